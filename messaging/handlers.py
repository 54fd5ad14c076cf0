"""Bridge handlers of the messaging topics: Kafka records to users' sockets.

They only push through the channel layer and store nothing, so processing a
record twice (a crash before its offset was committed) at most shows a
client a repeat, which clients drop by id.
"""

from __future__ import annotations

from kafka_bridge.loop import RecordInfo
from kafka_bridge.payloads import ChatMessage, MessageStatusEvent, TypingEvent

from .realtime import push_frame
from .services import ORIGIN_CHANNEL_HEADER
from .wire import message_wire_from_event


async def deliver_chat_message(event: ChatMessage, info: RecordInfo) -> None:
    """Push `message.new` to every recipient and to the sender's other sockets."""
    frame = {"type": "message.new", "message": message_wire_from_event(event)}
    await push_frame(
        [*event.recipient_ids, event.sender_id],
        frame,
        # The sending socket already has the message in its message.ack.
        exclude_channel=info.headers.get(ORIGIN_CHANNEL_HEADER),
    )


async def deliver_status_event(event: MessageStatusEvent, info: RecordInfo) -> None:
    """Push `message.status` to the sockets of the message's sender."""
    frame = {
        "type": "message.status",
        "messageId": event.message_id,
        "conversationId": event.conversation_id,
        "status": event.status,
        "userId": event.user_id,
        "timestamp": event.timestamp,
    }
    if event.up_to_seq is not None:
        frame["upToSeq"] = event.up_to_seq
    await push_frame([event.sender_id], frame)


async def deliver_typing(event: TypingEvent, info: RecordInfo) -> None:
    """Push `typing` to the other participants, never to the typist."""
    frame = {
        "type": "typing",
        "conversationId": event.conversation_id,
        "userId": event.user_id,
        "isTyping": event.is_typing,
        "timestamp": event.timestamp,
    }
    await push_frame([uid for uid in event.recipient_ids if uid != event.user_id], frame)
