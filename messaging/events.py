"""The Kafka side of the messaging contract: its three topics and their payloads (PROTOCOL.md §1).

Declared once here; services queue these payloads through the outbox (or,
for typing, publish them directly), and the bridge decodes records into them.
Other services produce in the seed's shapes (PROTOCOL.md §5), which leave
out some fields this service always sends: those are optional here, and the
bridge resolves them from the database (`foreign.py`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from kafka_bridge.consume.registry import register_topic
from kafka_bridge.payloads import Payload
from kafka_bridge.topics import DAY_MS, Topic


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
    # Contract 1.3: what the record is (absent: text), the message an edit or delete names, the event's details.
    kind: str = "text"
    refers_to: str | None = None
    meta: dict | None = None  # bare: the decoder checks with isinstance

    missing_field_reasons: ClassVar[dict[str, str]] = {
        "messageId": "not produced through this service, which stores a message before announcing it",
    }


@dataclass(frozen=True, slots=True)
class MessageStatusEvent(Payload):
    """A watermark move the sender must learn of (topic message-status-events).

    Every message of the sender in the conversation up to `up_to_seq` has
    `status` for `user_id`, or, with `aggregate`, for every other
    participant (then `user_id` is None). `message_id` names the sender's
    latest message covered. Other services send the seed's per-message
    shape, without `up_to_seq`.
    """

    message_id: str
    conversation_id: str
    status: str
    user_id: str | None
    # Left out by other services (the seed's shape): resolved from the message.
    sender_id: str | None = field(default=None, kw_only=True)
    timestamp: str
    up_to_seq: int | None = None
    aggregate: bool | None = None


@dataclass(frozen=True, slots=True)
class TypingEvent(Payload):
    """A typing indicator; `recipient_ids` spares the bridge a database read."""

    conversation_id: str
    user_id: str
    is_typing: bool
    timestamp: int
    # Left out by other services (the seed's shape): resolved from the conversation.
    recipient_ids: list[str] | None = None


# Key: conversationId, so that one conversation's messages stay in order.
CHAT_MESSAGES: Topic[ChatMessage] = register_topic(
    Topic("chat-messages", ChatMessage, lambda p: p.conversation_id, 7 * DAY_MS)
)
# Key: the user who must be told (the message's sender).
MESSAGE_STATUS_EVENTS: Topic[MessageStatusEvent] = register_topic(
    Topic("message-status-events", MessageStatusEvent, lambda p: p.sender_id or p.user_id or "", DAY_MS)
)
# Key: conversationId; short-lived by design.
TYPING_EVENTS: Topic[TypingEvent] = register_topic(
    Topic("typing-events", TypingEvent, lambda p: p.conversation_id, 60_000)
)
