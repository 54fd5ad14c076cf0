"""The shapes messages and presence take on the WebSocket and in REST answers, declared once."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from core.parsing import iso_utc
from users.presence import presence_fields

from .events import ChatMessage
from .models import Message, MessageStatus


def message_wire(message: Message, status: str = MessageStatus.SENT.value) -> dict[str, Any]:
    """Return the contract's Message object for a stored message with its status (see selectors.messages_wire)."""
    return {
        "id": str(message.id),
        "conversationId": str(message.conversation_id),
        "senderId": str(message.sender_id),
        "content": message.content,
        "seq": message.seq,
        "clientMessageId": message.client_message_id,
        "createdAt": iso_utc(message.created_at),
        "status": status,
        "kind": message.kind,
        "refersTo": str(message.refers_to_id) if message.refers_to_id else None,
        "meta": message.meta,
        "editedAt": iso_utc(message.edited_at) if message.edited_at else None,
        "deletedAt": iso_utc(message.deleted_at) if message.deleted_at else None,
    }


def message_wire_from_event(event: ChatMessage) -> dict[str, Any]:
    """Return the Message object for a chat-messages record (just sent, so SENT)."""
    return {
        "id": event.message_id,
        "conversationId": event.conversation_id,
        "senderId": event.sender_id,
        "content": event.content,
        "seq": event.seq,
        "clientMessageId": event.client_message_id,
        "createdAt": event.created_at,
        "status": MessageStatus.SENT.value,
        "kind": event.kind,
        "refersTo": event.refers_to,
        "meta": event.meta,
        # A record announces a new message or event: not edited or deleted yet.
        "editedAt": None,
        "deletedAt": None,
    }


def chat_message_event(message: Message, recipient_ids: list[str], sender_name: str) -> ChatMessage:
    """Build the chat-messages payload of a stored message."""
    return ChatMessage(
        message_id=str(message.id),
        conversation_id=str(message.conversation_id),
        sender_id=str(message.sender_id),
        # The seed's single recipient: the other user of a direct conversation.
        recipient_id=recipient_ids[0] if len(recipient_ids) == 1 else None,
        recipient_ids=recipient_ids,
        content=message.content,
        seq=message.seq,
        client_message_id=message.client_message_id,
        created_at=iso_utc(message.created_at),
        sender_name=sender_name,
        kind=message.kind,
        refers_to=str(message.refers_to_id) if message.refers_to_id else None,
        meta=message.meta,
    )


def presence_frame(user_id: str, online: bool, last_seen_at: datetime | None) -> dict[str, Any]:
    """Return the `presence` frame about a user: `{userId, online, lastSeenAt}` (lastSeenAt null while online)."""
    return {"type": "presence", "userId": user_id, **presence_fields(online, last_seen_at)}
