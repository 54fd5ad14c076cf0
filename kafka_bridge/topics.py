"""What a Kafka topic is: its name, payload type, key and retention.

Each app declares its own topics once, next to their payloads (its
`events.py`), and registers them (`kafka_bridge.consume.registry`); producers and
consumers import them from there. Partitions are a setting; replication
follows the cluster's size unless set (`operate/provisioning.py`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from django.conf import settings

from .payloads import Payload

P = TypeVar("P", bound=Payload)

DAY_MS = 24 * 60 * 60 * 1000
DEAD_LETTER_SUFFIX = ".DLT"
# Dead letters wait for an operator: keep them as long as the longest topic.
DEAD_LETTER_RETENTION_MS = 30 * DAY_MS


@dataclass(frozen=True)
class Topic(Generic[P]):
    """A Kafka topic, its payload type and how its records are keyed."""

    name: str
    payload: type[P]
    key: Callable[[P], str]
    retention_ms: int

    @property
    def dead_letter(self) -> str:
        """Name of the topic where records that cannot be processed end up."""
        return self.name + DEAD_LETTER_SUFFIX

    @property
    def partitions(self) -> int:
        return settings.KAFKA_TOPIC_PARTITIONS

    def config(self) -> dict[str, str]:
        """Return the topic-level configuration kafka_topics enforces."""
        return {"retention.ms": str(self.retention_ms)}
