"""Bridge handlers of the messaging topics: Kafka records to users' sockets.

They push through the channel layer, which at most shows a client a repeat
when a record is processed twice (a crash before its offset was committed);
clients drop repeats by id. They write nothing. A record from another
service is first resolved and checked against the database (`foreign.py`;
one naming what this service does not know is dead-lettered); this
service's own records are delivered as they are. kafka.py registers them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

from core.db import db
from kafka_bridge.consume.records import RecordInfo

from .events import ChatMessage, MessageStatusEvent, TypingEvent
from .foreign import foreign_chat_message, foreign_status_event, foreign_typing_event
from .realtime import push_frames
from .services import ORIGIN_CHANNEL_HEADER
from .wire import message_wire_from_event


async def deliver_chat_messages(records: list[tuple[ChatMessage, RecordInfo]]) -> None:
    """Push `message.new` to every recipient and to the sender's other sockets, for records of one conversation.

    A republished record (manage.py republish) is skipped: it is for
    consumers downstream that lost theirs. Clients got the message when it
    was first published, or get it by their watermarks (redelivery, `sync`);
    pushing it again would show it to them as new a second time.
    """
    records = [(event, info) for event, info in records if not info.republished]
    records = await _resolved(records, _resolve_chat_message)
    await push_frames(
        [
            (
                [*event.recipient_ids, event.sender_id],
                {"type": "message.new", "message": message_wire_from_event(event)},
                # The sending socket already has the message in its message.ack.
                info.headers.get(ORIGIN_CHANNEL_HEADER),
            )
            for event, info in records
        ],
        _key(records),
    )


async def deliver_status_events(records: list[tuple[MessageStatusEvent, RecordInfo]]) -> None:
    """Push `message.status` to the sockets of each message's sender, for records of one sender."""
    records = await _resolved(records, _resolve_status_event)
    await push_frames(
        [([event.sender_id or ""], _status_frame(event), None) for event, _info in records], _key(records)
    )


def _status_frame(event: MessageStatusEvent) -> dict[str, object]:
    frame: dict[str, object] = {
        "type": "message.status",
        "messageId": event.message_id,
        "conversationId": event.conversation_id,
        "status": event.status,
        "userId": event.user_id,
        "timestamp": event.timestamp,
    }
    if event.up_to_seq is not None:
        frame["upToSeq"] = event.up_to_seq
    if event.aggregate:
        frame["aggregate"] = True
    return frame


async def deliver_typing_events(records: list[tuple[TypingEvent, RecordInfo]]) -> None:
    """Push `typing` to the other participants, never to the typist, for records of one conversation."""
    records = await _resolved(records, _resolve_typing_event)
    await push_frames(
        [
            (
                [uid for uid in event.recipient_ids or () if uid != event.user_id],
                {
                    "type": "typing",
                    "conversationId": event.conversation_id,
                    "userId": event.user_id,
                    "isTyping": event.is_typing,
                    "timestamp": event.timestamp,
                },
                None,
            )
            for event, _info in records
        ],
        _key(records),
    )


def _key(records: Sequence[tuple[object, RecordInfo]]) -> str | None:
    # The records' Kafka key: frames of one key keep their order through one channel-layer shard.
    return records[0][1].key if records else None


### Records from other services ###

E = TypeVar("E")

_resolve_chat_message = db(foreign_chat_message)
_resolve_status_event = db(foreign_status_event)
_resolve_typing_event = db(foreign_typing_event)


async def _resolved(
    records: list[tuple[E, RecordInfo]], resolve: Callable[[E], Awaitable[E]]
) -> list[tuple[E, RecordInfo]]:
    """Resolve and check the records other services produced, all before anything is pushed."""
    return [(event if info.produced_here else await resolve(event), info) for event, info in records]
