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
