"""Writes of notifications."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils.dateparse import parse_datetime

from chat_project.errors import NotFound, ValidationFailed
from kafka_bridge.outbox import outbox_enqueue
from kafka_bridge.payloads import Notification as NotificationEvent
from kafka_bridge.topics import NOTIFICATIONS
from messaging.services import parse_uuid
from messaging.wire import iso_utc

from .models import Notification


def notification_store(*, event: NotificationEvent) -> Notification:
    """Store a notifications record by its id: the same record twice stores it once."""
    created_at = parse_datetime(event.created_at)
    if created_at is None:
        raise ValidationFailed({"createdAt": "Not an ISO 8601 time."})
    notification, _ = Notification.objects.update_or_create(
        id=event.id,
        defaults={
            "user_id": int(event.user_id),
            "type": event.type,
            "title": event.title[:200],
            "content": event.content,
            "related_entity_id": event.related_entity_id,
            "read": event.read,
            "created_at": created_at,
        },
    )
    return notification


def notification_wire(notification: Notification) -> NotificationEvent:
    """Return the notifications-topic payload (and frame body) of a stored notification."""
    return NotificationEvent(
        id=str(notification.id),
        user_id=str(notification.user_id),
        title=notification.title,
        content=notification.content,
        type=notification.type,
        related_entity_id=notification.related_entity_id,
        read=notification.read,
        created_at=iso_utc(notification.created_at),
    )


def notification_mark_read(*, user: AbstractBaseUser, notification_id: Any) -> None:
    """Mark one of the user's notifications read, and tell the user's other sockets."""
    with transaction.atomic():
        notification = (
            Notification.objects.select_for_update().filter(user_id=user.pk, pk=parse_uuid(notification_id)).first()
        )
        if notification is None:
            raise NotFound()
        if not notification.read:
            notification.read = True
            notification.save(update_fields=["read"])
            outbox_enqueue(topic=NOTIFICATIONS, payload=notification_wire(notification))


def notifications_mark_all_read(*, user: AbstractBaseUser) -> int:
    """Mark all of the user's notifications read; return how many changed."""
    with transaction.atomic():
        unread = list(Notification.objects.select_for_update().filter(user_id=user.pk, read=False))
        Notification.objects.filter(pk__in=[n.pk for n in unread]).update(read=True)
        for notification in unread:
            notification.read = True
            outbox_enqueue(topic=NOTIFICATIONS, payload=notification_wire(notification))
    return len(unread)
