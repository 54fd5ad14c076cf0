"""Records other services produce, in the seed's shapes: what they leave out is resolved, what they name is checked.

A record this service did not produce (`kafka_bridge.produce.origin`) may leave out
`senderId` (a status event) or `recipientIds` (a typing event) and may give
a time without a zone, which is UTC (PROTOCOL.md §5). Each function here
takes such a record, resolves what it left out from the database, checks
that every user, message and conversation it names is known here, and
returns the record as this service would have produced it. A record that
names something this service does not know raises `Unprocessable` with the
reason, and the bridge dead-letters it at once. The bridge handlers call
these only for records from elsewhere: this service's own records name what
it has just committed, and their delivery never waits for the database.
"""

from __future__ import annotations

import uuid
from dataclasses import replace

from django.contrib.auth import get_user_model

from core.parsing import iso_utc, parse_int_id
from kafka_bridge.payloads import Unprocessable, record_time

from .events import ChatMessage, MessageStatusEvent, TypingEvent
from .models import Message, MessageStatus
from .selectors import member_ids_at
from .services import conversation_member_ids
from .wire import chat_message_event

User = get_user_model()


def foreign_chat_message(event: ChatMessage) -> ChatMessage:
    """Return a chat-messages record from elsewhere as the stored message it names, to its members.

    The message must be stored here (a record without `messageId` does not
    even decode); what is delivered is what is stored, whatever the record
    says about it.
    """
    message = (
        Message.objects.select_related("sender").filter(pk=message_uuid).first()
        if (message_uuid := _uuid(event.message_id))
        else None
    )
    if message is None:
        raise Unprocessable(f"unknown message {event.message_id!r}")
    _check_same_conversation(message, event.conversation_id)
    if event.sender_id != str(message.sender_id):
        raise Unprocessable(f"message {event.message_id!r} was not sent by user {event.sender_id!r}")
    members = member_ids_at(conversation_id=message.conversation_id, seq=message.seq)
    named = {*event.recipient_ids, *([event.recipient_id] if event.recipient_id is not None else [])}
    for user_id in sorted(named):
        _check_participant(members, user_id, message.conversation_id)
    recipients = [str(uid) for uid in members if uid != message.sender_id]
    return chat_message_event(message, recipients, message.sender.get_username())


def foreign_status_event(event: MessageStatusEvent) -> MessageStatusEvent:
    """Return a message-status-events record from elsewhere with its sender resolved from the message."""
    row = (
        Message.objects.filter(pk=message_uuid).values_list("conversation_id", "sender_id").first()
        if (message_uuid := _uuid(event.message_id))
        else None
    )
    if row is None:
        raise Unprocessable(f"unknown message {event.message_id!r}")
    conversation_id, sender_id = row
    if _uuid(event.conversation_id) != conversation_id:
        raise Unprocessable(f"message {event.message_id!r} is not in conversation {event.conversation_id!r}")
    if event.sender_id is not None and event.sender_id != str(sender_id):
        raise Unprocessable(f"message {event.message_id!r} was not sent by user {event.sender_id!r}")
    if event.user_id is None:
        raise Unprocessable("a status from another service names the recipient whose status it is (userId)")
    user_id = _check_participant(conversation_member_ids(conversation_id), event.user_id, conversation_id)
    if user_id == sender_id:
        raise Unprocessable(f"user {event.user_id!r} sent message {event.message_id!r}; a status is a recipient's")
    if event.status not in MessageStatus.values:
        raise Unprocessable(f"unknown status {event.status!r}")
    return replace(
        event,
        message_id=str(message_uuid),
        conversation_id=str(conversation_id),
        user_id=str(user_id),
        sender_id=str(sender_id),
        timestamp=iso_utc(record_time(event.timestamp, "timestamp")),
    )


def foreign_typing_event(event: TypingEvent) -> TypingEvent:
    """Return a typing-events record from elsewhere with its recipients resolved from the conversation."""
    conversation_id = _uuid(event.conversation_id)
    members = conversation_member_ids(conversation_id) if conversation_id is not None else ()
    if conversation_id is None or not members:
        raise Unprocessable(f"unknown conversation {event.conversation_id!r}")
    typist = _check_participant(members, event.user_id, conversation_id)
    if event.recipient_ids is None:
        recipients = [uid for uid in members if uid != typist]
    else:
        named = [_check_participant(members, uid, conversation_id) for uid in event.recipient_ids]
        recipients = [uid for uid in named if uid != typist]
    return replace(
        event,
        conversation_id=str(conversation_id),
        user_id=str(typist),
        recipient_ids=[str(uid) for uid in recipients],
    )


### Checks ###


def _uuid(value: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(value)
    except ValueError:
        return None


def _check_same_conversation(message: Message, conversation_id: str) -> None:
    if _uuid(conversation_id) != message.conversation_id:
        raise Unprocessable(f"message {str(message.pk)!r} is not in conversation {conversation_id!r}")


def _check_participant(members: tuple[int, ...], user_id: str, conversation_id: uuid.UUID) -> int:
    """Return the id of a user the record names, who must be a participant of the conversation."""
    pk = parse_int_id(user_id)
    if pk is not None and pk in members:
        return pk
    if pk is None or not User.objects.filter(pk=pk).exists():
        raise Unprocessable(f"unknown user {user_id!r}")
    raise Unprocessable(f"user {user_id!r} is not a participant of conversation {str(conversation_id)!r}")
