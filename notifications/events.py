"""The Kafka side of notifications: the notifications topic and its payload (PROTOCOL.md §1)."""

from __future__ import annotations

from dataclasses import dataclass, field

from kafka_bridge.consume.registry import register_topic
from kafka_bridge.payloads import Payload
from kafka_bridge.topics import DAY_MS, Topic


@dataclass(frozen=True, slots=True)
class Notification(Payload):
    """An in-app notification (topic notifications)."""

    # Any string; other producers may leave it out (the bridge then assigns one).
    id: str | None = field(default=None, kw_only=True)
    user_id: str
    title: str
    content: str
    type: str
    related_entity_id: str | None
    read: bool
    created_at: str
    # Added to the seed's payload: a newer version of the same id replaces an older one.
    updated_at: str | None = None
    # Added to the seed's payload: the conversation a NEW_MESSAGE notification announces (a client opens it).
    conversation_id: str | None = None


# Key: userId.
NOTIFICATIONS: Topic[Notification] = register_topic(
    Topic("notifications", Notification, lambda p: p.user_id, 30 * DAY_MS)
)
