"""What a consumed record is: where it came from, its headers, and the handlers that take it.

The ground floor of the consume side: the driver, its steps, the registry
and the dead-letter tools all read records through this module, and it
imports none of them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from confluent_kafka import Message

from ..payloads import Payload
from ..produce.origin import produced_here, republished

P = TypeVar("P", bound=Payload)

# Every line of the consume side is logged under this name, the one operators' filters know.
LOGGER_NAME = "kafka_bridge.loop"

# Dead-letter headers: why the record failed, and where it came from.
DEAD_LETTER_HEADER_PREFIX = "dlt."
H_ERROR = "dlt.error"
H_ERROR_TYPE = "dlt.error.type"
H_TOPIC = "dlt.original.topic"
H_PARTITION = "dlt.original.partition"
H_OFFSET = "dlt.original.offset"
H_FAILED_AT = "dlt.failed.at"

# A record's place: topic, partition, offset.
Position = tuple[str, int, int]


def position(msg: Message) -> Position:
    """Return the topic, partition and offset of a consumed record (only error events have none)."""
    topic, partition, offset = msg.topic(), msg.partition(), msg.offset()
    if topic is None or partition is None or offset is None:
        raise ValueError(f"not a consumed record: {msg.error()}")
    return topic, partition, offset


def log_fields(msg: Message, payload: Payload | None = None) -> dict[str, Any]:
    """Return a record's place (and its payload's message and conversation, if any) as `extra=` for a log call."""
    fields: dict[str, Any] = {"topic": msg.topic(), "partition": msg.partition(), "offset": msg.offset()}
    for attribute, name in (("message_id", "messageId"), ("conversation_id", "conversationId")):
        if (value := getattr(payload, attribute, None)) is not None:
            fields[name] = value
    return fields


def headers_of(msg: Message) -> list[tuple[str, bytes]]:
    """Return a record's headers as (name, value) pairs; a header without a value has b""."""
    raw = msg.headers() or []
    pairs = raw.items() if isinstance(raw, dict) else raw
    return [(k, v.encode() if isinstance(v, str) else (v or b"")) for k, v in pairs]


@dataclass(frozen=True)
class RecordInfo:
    """Where a record came from, and its headers, for handlers that need them."""

    topic: str
    partition: int
    offset: int
    key: str | None
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, msg: Message) -> RecordInfo:
        key = msg.key()
        topic, partition, offset = position(msg)
        return cls(
            topic=topic,
            partition=partition,
            offset=offset,
            key=key.decode(errors="replace") if isinstance(key, bytes) else key,
            headers={k: v.decode(errors="replace") for k, v in headers_of(msg)},
        )

    @property
    def produced_here(self) -> bool:
        """Whether this service produced the record (else another service did, in the seed's shape)."""
        return produced_here(self.headers)

    @property
    def republished(self) -> bool:
        """Whether this service produced the record again, for consumers that lost the first (manage.py republish)."""
        return republished(self.headers)


Handler = Callable[[P, RecordInfo], Awaitable[None]]
# Handles several records of one key at once, in order (for example with one
# round trip for all of them); must be safe to run again for any of them.
BatchHandler = Callable[[list[tuple[P, RecordInfo]]], Awaitable[None]]


def one_by_one(batch_handler: BatchHandler[P]) -> Handler[P]:
    """Return the handler of a single record that a batch handler makes: a batch of one."""

    async def handle(payload: P, info: RecordInfo) -> None:
        await batch_handler([(payload, info)])

    return handle
