"""Bridge handlers of notifications: store and push records of the notifications topic,
and tell offline recipients of new messages (read from chat-messages).
"""

from __future__ import annotations

from core.db import db
from kafka_bridge.consume.records import RecordInfo
from kafka_bridge.payloads import Unprocessable
from messaging.events import ChatMessage
from messaging.foreign import foreign_chat_message
from messaging.models import MessageKind
from messaging.presence import online_user_ids
from messaging.realtime import push_frame

from .events import Notification as NotificationEvent
from .services import notification_for_new_message, notification_record, notification_store, sender_name_of


async def store_and_push_notification(event: NotificationEvent, info: RecordInfo) -> None:
    """Store the notification (idempotent by id and version) and push it to the user's sockets.

    A record of another producer is taken in the seed's shape: its id
    assigned when it has none, its times read as UTC when they have no zone;
    one for a user this service does not know is dead-lettered.
    """
    event = notification_record(event=event, topic=info.topic)
    await db(notification_store)(event=event)
    await push_frame([event.user_id], {"type": "notification", "notification": event.to_dict()}, key=info.key)


async def notify_offline_recipients(event: ChatMessage, info: RecordInfo) -> None:
    """Give each recipient without an open socket a NEW_MESSAGE notification.

    Runs in a consumer group of its own, so this database work never delays
    live delivery. Idempotent by seq. Only text messages are announced:
    edits, deletes and membership events are not new messages, and neither
    is a republished record (manage.py republish), which would otherwise
    announce again a message whose notification was read.
    """
    if info.republished:
        return
    if not info.produced_here:
        try:
            event = await db(foreign_chat_message)(event)
        except Unprocessable:
            return  # the chat-messages loop dead-letters it; once is enough
    if event.kind != MessageKind.TEXT:
        return
    online = await online_user_ids(event.recipient_ids)
    offline = [user_id for user_id in event.recipient_ids if user_id not in online]
    if not offline:
        return
    sender_name = await db(sender_name_of)(event)  # once for all of them
    for user_id in offline:
        await db(notification_for_new_message)(user_id=user_id, event=event, sender_name=sender_name)
