"""Decode at the edge: a record becomes its topic's payload type and its RecordInfo."""

from __future__ import annotations

from typing import Generic

from confluent_kafka import Message

from ..records import P, RecordInfo


class Decode(Generic[P]):
    """Decode a record into its topic's payload type; PayloadError when it cannot be."""

    def __init__(self, payload: type[P]) -> None:
        self.payload = payload

    def submit(self, msg: Message) -> tuple[P, RecordInfo]:
        """Return the record's payload and where it came from."""
        info = RecordInfo.of(msg)
        return self.payload.decode(msg.value()), info
