"""The one registry of Kafka topics: names, keys, retention and payload types.

Producers and consumers import topics from here and nowhere else. Partitions
and replication factor are settings; the retention values are the seed's.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from django.conf import settings

from .payloads import ChatMessage, MessageStatusEvent, Notification, Payload, TypingEvent

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

    @property
    def replication_factor(self) -> int:
        return settings.KAFKA_REPLICATION_FACTOR

    def config(self) -> dict[str, str]:
        """Return the topic-level configuration kafka_topics enforces."""
        return {"retention.ms": str(self.retention_ms)}


# Key: conversationId, so that one conversation's messages stay in order.
CHAT_MESSAGES: Topic[ChatMessage] = Topic("chat-messages", ChatMessage, lambda p: p.conversation_id, 7 * DAY_MS)
# Key: the user who must be told (the message's sender).
MESSAGE_STATUS_EVENTS: Topic[MessageStatusEvent] = Topic(
    "message-status-events", MessageStatusEvent, lambda p: p.sender_id, DAY_MS
)
# Key: conversationId; short-lived by design.
TYPING_EVENTS: Topic[TypingEvent] = Topic("typing-events", TypingEvent, lambda p: p.conversation_id, 60_000)
# Key: userId.
NOTIFICATIONS: Topic[Notification] = Topic("notifications", Notification, lambda p: p.user_id, 30 * DAY_MS)

ALL_TOPICS: tuple[Topic, ...] = (CHAT_MESSAGES, MESSAGE_STATUS_EVENTS, TYPING_EVENTS, NOTIFICATIONS)
TOPICS_BY_NAME: dict[str, Topic] = {t.name: t for t in ALL_TOPICS}
