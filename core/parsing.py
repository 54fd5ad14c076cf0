"""Parsing and formatting of values that cross the edge, shared by every app."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from django.utils.dateparse import parse_datetime

from .errors import NotFound


def parse_uuid(value: Any) -> uuid.UUID:
    """Parse an id from a client; anything that is not a UUID is simply not found."""
    try:
        return uuid.UUID(str(value))
    except (TypeError, ValueError, AttributeError):
        raise NotFound() from None


# Ids of rows with bigint keys: a longer string of digits names nothing.
MAX_INT_ID_DIGITS = 18


def parse_int_id(value: str) -> int | None:
    """Parse the id of a row with an integer key (a user) from a string; None when it cannot be one."""
    if value.isascii() and value.isdigit() and len(value) <= MAX_INT_ID_DIGITS:
        return int(value)
    return None


def iso_utc(moment: datetime) -> str:
    """Format a time as the contract's ISO 8601 UTC with milliseconds (`...:00.123Z`)."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_iso_utc(value: str) -> datetime | None:
    """Parse an ISO 8601 time; one without a zone (`2025-11-11T22:30:00`, the seed's) is UTC. None if it is not one."""
    try:
        parsed = parse_datetime(value)
    except ValueError:  # well formed but impossible, such as a 30th of February
        return None
    if parsed is None:
        return None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed


BAD_TEXT_DETAIL = "Text must be valid Unicode without NUL characters."


def has_bad_text(value: Any) -> bool:
    """Whether parsed JSON holds a string (key or value) with a NUL or a lone surrogate.

    JSON can spell both (`\\u0000`, `\\ud800`); neither can be stored in
    PostgreSQL or sent back as UTF-8, so the edge refuses them.
    """
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if not storable_text(item):
                return True
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


def storable_text(text: str) -> bool:
    """Return whether PostgreSQL can store a string and UTF-8 carry it: no NUL, no lone surrogate."""
    if "\x00" in text:
        return False
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


def json_may_hold_bad_text(raw: str | bytes) -> bool:
    """Whether raw JSON may spell a NUL or a surrogate: only a `\\u` escape can (a cheap first look)."""
    if isinstance(raw, bytes):
        return b"\\u" in raw
    return "\\u" in raw
