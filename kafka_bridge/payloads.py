"""Typed Kafka payloads: decoded at the edge, so handlers never see raw dicts.

Each payload is a frozen dataclass with snake_case attributes; on the wire the
fields are camelCase JSON, a superset of the seed's payloads (PROTOCOL.md §1).
`decode` checks every field's type and raises `PayloadError` on anything else.
"""

from __future__ import annotations

import functools
import json
import types
import typing
from dataclasses import MISSING, dataclass, field, fields
from typing import Any, ClassVar, Self


class PayloadError(ValueError):
    """A record that cannot be decoded into its topic's payload type."""


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


@functools.cache
def _wire_fields(cls: type) -> tuple[tuple[str, str, Any, bool], ...]:
    """Return (attribute, wire name, type, required) of each field; worked out once per class."""
    hints = typing.get_type_hints(cls)
    return tuple(
        (f.name, camel(f.name), hints[f.name], f.default is MISSING and f.default_factory is MISSING)
        for f in fields(cls)
    )


class Payload:
    """Base of every payload: JSON encoding and checked decoding."""

    _hints: ClassVar[dict[str, Any]]

    def to_dict(self) -> dict[str, Any]:
        """Return the wire form (camelCase keys)."""
        return {camel(f.name): getattr(self, f.name) for f in fields(self)}  # type: ignore[arg-type]

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
                    raise PayloadError(f"{cls.__name__}: missing field {key!r}")
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


@dataclass(frozen=True, slots=True)
class ChatMessage(Payload):
    """A stored message on its way to its recipients (topic chat-messages)."""

    message_id: str
    conversation_id: str
    sender_id: str
    recipient_id: str | None
    recipient_ids: list[str]
    content: str
    seq: int
    client_message_id: str
    created_at: str
    # Added to the seed's payload: for notifications that name the sender.
    sender_name: str | None = None


@dataclass(frozen=True, slots=True)
class MessageStatusEvent(Payload):
    """A receipt the sender must learn of (topic message-status-events)."""

    message_id: str
    conversation_id: str
    status: str
    user_id: str
    sender_id: str
    timestamp: str
    up_to_seq: int | None = None


@dataclass(frozen=True, slots=True)
class TypingEvent(Payload):
    """A typing indicator; `recipient_ids` spares the bridge a database read."""

    conversation_id: str
    user_id: str
    is_typing: bool
    timestamp: int
    recipient_ids: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Notification(Payload):
    """An in-app notification (topic notifications)."""

    id: str
    user_id: str
    title: str
    content: str
    type: str
    related_entity_id: str | None
    read: bool
    created_at: str
    # Added to the seed's payload: a newer version of the same id replaces an older one.
    updated_at: str | None = None
