"""Checks of client input to the users directory: raw values in, typed values out."""

from __future__ import annotations

from typing import Any

from core.errors import ValidationFailed

from .limits import MAX_DISPLAY_NAME_CHARS, MAX_SEARCH_CHARS, SEARCH_DEFAULT_LIMIT, SEARCH_MAX_LIMIT


def check_display_name(value: Any) -> str:
    """A display name, trimmed: 0 to MAX_DISPLAY_NAME_CHARS characters, no control characters."""
    if not isinstance(value, str):
        raise ValidationFailed({"displayName": "Must be a string."})
    name = value.strip()
    if len(name) > MAX_DISPLAY_NAME_CHARS:
        raise ValidationFailed({"displayName": f"Must be at most {MAX_DISPLAY_NAME_CHARS} characters."})
    if any(ord(c) < 32 or ord(c) == 127 for c in name):
        raise ValidationFailed({"displayName": "Must not contain control characters."})
    return name


def check_search(value: Any) -> str:
    """A directory search text, trimmed: at most MAX_SEARCH_CHARS characters (empty matches everyone)."""
    if value is None:
        return ""
    if not isinstance(value, str) or len(value.strip()) > MAX_SEARCH_CHARS or "\x00" in value:
        raise ValidationFailed({"search": f"Must be text of at most {MAX_SEARCH_CHARS} characters."})
    return value.strip()


def check_search_limit(value: int | None) -> int:
    """How many users one search answers: 1 to SEARCH_MAX_LIMIT, default SEARCH_DEFAULT_LIMIT."""
    if value is None:
        return SEARCH_DEFAULT_LIMIT
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= SEARCH_MAX_LIMIT:
        raise ValidationFailed({"limit": f"Must be 1 to {SEARCH_MAX_LIMIT}."})
    return value
