"""The base of typed Kafka payloads: decoded at the edge, so handlers never see raw dicts.

Each app declares its topics' payloads (in its `events.py`) as frozen
dataclasses with snake_case attributes deriving from `Payload`; on the wire
the fields are camelCase JSON, a superset of the seed's payloads
(PROTOCOL.md §1). `decode` checks every field's type and raises
`PayloadError` on anything else.
"""

from __future__ import annotations

import functools
import json
import types
import typing
from collections.abc import Callable
from dataclasses import MISSING, fields
from datetime import datetime
from typing import Any, ClassVar, Self

from core.parsing import parse_iso_utc


class Unprocessable(Exception):
    """A record that can never be handled here, whatever the retries: it goes to the dead-letter topic at once.

    Handlers raise it for a record that names a user, message or conversation
    this service does not know; its message is the reason operators read in
    the dead letter's headers.
    """


class PayloadError(Unprocessable, ValueError):
    """A record that cannot be decoded into its topic's payload type."""


def record_time(value: str, field: str) -> datetime:
    """Return a time field of a record (ISO 8601, UTC when it names no zone); Unprocessable when it is none."""
    moment = parse_iso_utc(value)
    if moment is None:
        raise Unprocessable(f"{field} {value!r} is not an ISO 8601 time")
    return moment


def camel(name: str) -> str:
    """Return the camelCase wire name of a snake_case attribute."""
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def _check(value: Any, expected: Any) -> bool:
    origin = typing.get_origin(expected)
    if origin in (typing.Union, types.UnionType):
        return any(_check(value, option) for option in typing.get_args(expected))
    if origin is list:
        (item_type,) = typing.get_args(expected)
        return isinstance(value, list) and all(_check(item, item_type) for item in value)
    if expected is type(None):
        return value is None
    if expected is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, expected)


WireField = tuple[str, str, Any, bool]


def _wire_fields_of(cls: type) -> tuple[WireField, ...]:
    """Return (attribute, wire name, type, required) of each field."""
    hints = typing.get_type_hints(cls)
    return tuple(
        (f.name, camel(f.name), hints[f.name], f.default is MISSING and f.default_factory is MISSING)
        for f in fields(cls)
    )


# Worked out once per class.
_wire_fields: Callable[[type], tuple[WireField, ...]] = functools.cache(_wire_fields_of)


class Payload:
    """Base of every payload: JSON encoding and checked decoding."""

    _hints: ClassVar[dict[str, Any]]
    # Why a record without a required field cannot be taken, where that says more than "missing".
    missing_field_reasons: ClassVar[dict[str, str]] = {}

    def to_dict(self) -> dict[str, Any]:
        """Return the wire form (camelCase keys)."""
        return {name: getattr(self, attribute) for attribute, name, _, _ in _wire_fields(type(self))}

    def encode(self) -> bytes:
        """Serialize to compact UTF-8 JSON."""
        return json.dumps(self.to_dict(), separators=(",", ":"), ensure_ascii=False).encode()

    @classmethod
    def from_dict(cls, data: Any) -> Self:
        """Build the payload from wire JSON, checking every field's type."""
        if not isinstance(data, dict):
            raise PayloadError(f"{cls.__name__}: expected a JSON object")
        kwargs: dict[str, Any] = {}
        for name, key, hint, required in _wire_fields(cls):
            if key not in data:
                if required:
                    reason = cls.missing_field_reasons.get(key)
                    raise PayloadError(f"{cls.__name__}: missing field {key!r}" + (f": {reason}" if reason else ""))
                continue
            value = data[key]
            if not _check(value, hint):
                raise PayloadError(f"{cls.__name__}: field {key!r} has the wrong type")
            kwargs[name] = value
        return cls(**kwargs)

    @classmethod
    def decode(cls, raw: bytes | None) -> Self:
        """Parse a record value."""
        if raw is None:
            raise PayloadError(f"{cls.__name__}: empty record")
        try:
            data = json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise PayloadError(f"{cls.__name__}: invalid JSON ({exc})") from exc
        return cls.from_dict(data)
