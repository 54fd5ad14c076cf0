"""Bridge handler of the notifications topic: store by id, then push."""

from __future__ import annotations

from chat_project.db import db
from kafka_bridge.loop import RecordInfo
from kafka_bridge.payloads import Notification as NotificationEvent
from messaging.realtime import push_frame

from .services import notification_store


async def store_and_push_notification(event: NotificationEvent, info: RecordInfo) -> None:
    """Store the notification (idempotent by id and version) and push it to the user's sockets."""
    await db(notification_store)(event=event)
    await push_frame([event.user_id], {"type": "notification", "notification": event.to_dict()})
