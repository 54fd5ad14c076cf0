"""Parsing and formatting of values that cross the edge, shared by every app."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from .errors import NotFound


def parse_uuid(value: Any) -> uuid.UUID:
    """Parse an id from a client; anything that is not a UUID is simply not found."""
    try:
        return uuid.UUID(str(value))
    except (TypeError, ValueError, AttributeError):
        raise NotFound() from None


def iso_utc(moment: datetime) -> str:
    """Format a time as the contract's ISO 8601 UTC with milliseconds (`...:00.123Z`)."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
