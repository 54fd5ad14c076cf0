"""Writes of notifications.

Every notification this system creates is stored and queued for the
notifications topic in one transaction (`_publish`); the bridge's consumer
then stores the record by id (a no-op for our own, the real store for other
producers') and pushes it to the user's sockets. A record carries
`updatedAt`, and an older version never overwrites a newer one, so
redelivery and reordering change nothing.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from core.errors import NotFound, ValidationFailed
from core.parsing import iso_utc, parse_int_id, storable_text
from kafka_bridge.payloads import Unprocessable, record_time
from kafka_bridge.produce.outbox import outbox_enqueue, outbox_enqueue_many
from messaging.events import ChatMessage
from messaging.models import Conversation, Participant
from messaging.services import ReadMove
from users.models import Profile

from .events import NOTIFICATIONS
from .events import Notification as NotificationEvent
from .limits import MAX_CONTENT_CHARS, MAX_ID_CHARS, MAX_RELATED_ENTITY_ID_CHARS, MAX_TITLE_CHARS, MAX_TYPE_CHARS
from .models import Notification

User = get_user_model()

SYSTEM_BATCH_SIZE = 500


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
        updated_at=iso_utc(notification.updated_at),
        conversation_id=str(notification.conversation_id) if notification.conversation_id else None,
    )


def _publish(notification: Notification) -> None:
    """Stamp, save and queue a notification; must run inside the caller's transaction."""
    _stamp(notification, _now_ms())
    notification.save()
    outbox_enqueue(topic=NOTIFICATIONS, payload=notification_wire(notification))


def _now_ms() -> datetime:
    """Return the time in millisecond precision, as on the wire."""
    now = timezone.now()
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def _stamp(notification: Notification, now: datetime) -> None:
    """Give a new version of a notification its `updated_at`: `now`, and strictly later than the last one."""
    if notification.updated_at is not None and now <= notification.updated_at:
        now = notification.updated_at + timedelta(milliseconds=1)
    notification.updated_at = now


### Storing records from the topic ###


def notification_record(*, event: NotificationEvent, topic: str) -> NotificationEvent:
    """Return a notifications record as it is stored and pushed: with an id, and its times in UTC.

    Other producers send the seed's shape: any string as the id, or none, and
    times without a zone, which are UTC. A record without an id gets one
    derived from its content, so that consuming it twice, or a producer
    sending it twice, still stores it once. A record that cannot be stored
    as it is raises `Unprocessable`.
    """
    created_at = record_time(event.created_at, "createdAt")
    updated_at = record_time(event.updated_at, "updatedAt") if event.updated_at is not None else None
    texts = {
        "id": event.id,
        "title": event.title,
        "content": event.content,
        "type": event.type,
        "relatedEntityId": event.related_entity_id,
    }
    for field, text in texts.items():
        if text is not None and not storable_text(text):
            raise Unprocessable(f"{field} holds a NUL character or a lone surrogate")
    for field, text, limit in (
        ("id", event.id, MAX_ID_CHARS),
        ("type", event.type, MAX_TYPE_CHARS),
        ("relatedEntityId", event.related_entity_id, MAX_RELATED_ENTITY_ID_CHARS),
    ):
        if text is not None and not 0 < len(text) <= limit:
            raise Unprocessable(f"{field} must be 1 to {limit} characters")
    notification_id = event.id if event.id is not None else _derived_id(event, topic)
    return replace(
        event,
        id=notification_id,
        created_at=iso_utc(created_at),
        updated_at=iso_utc(updated_at) if updated_at is not None else None,
        # A hint for clients: kept when it can name a conversation, dropped otherwise.
        conversation_id=_uuid_or_none(event.conversation_id),
    )


def _uuid_or_none(value: str | None) -> str | None:
    try:
        return str(uuid.UUID(value)) if value is not None else None
    except ValueError:
        return None


def notification_store(*, event: NotificationEvent) -> bool:
    """Store a notifications record (see `notification_record`) by id, unless a newer version is stored.

    Return whether it changed anything. A record for a user this service does
    not know raises `Unprocessable`.
    """
    assert event.id is not None, "notification_record gives every record an id"
    created_at = record_time(event.created_at, "createdAt")
    updated_at = record_time(event.updated_at, "updatedAt") if event.updated_at is not None else created_at
    fields = {
        "type": event.type,
        "title": event.title[:MAX_TITLE_CHARS],
        "content": event.content,
        "related_entity_id": event.related_entity_id,
        "read": event.read,
        "created_at": created_at,
        "updated_at": updated_at,
    }
    with transaction.atomic():
        stored = Notification.objects.select_for_update().filter(pk=event.id).first()
        if stored is None:
            user_id = _known_user_id(event.user_id)
            conversation_id = event.conversation_id
            if conversation_id is not None and not Conversation.objects.filter(pk=conversation_id).exists():
                conversation_id = None  # another producer's, unknown here
            _, created = Notification.objects.get_or_create(
                pk=event.id, defaults={**fields, "user_id": user_id, "conversation_id": conversation_id}
            )
            return created
        if str(stored.user_id) != event.user_id:
            raise Unprocessable(f"notification {event.id!r} belongs to another user than {event.user_id!r}")
        if event.updated_at is None or stored.updated_at >= updated_at:
            return False  # a repeat, or older than what we have
        Notification.objects.filter(pk=stored.pk).update(**fields)
        return True


# Ids derived from a record's content live in a namespace of their own.
DERIVED_ID_NAMESPACE = uuid.UUID("6f1c7d3e-2b4a-5c8e-9d0f-1a2b3c4d5e6f")


def _derived_id(event: NotificationEvent, topic: str) -> str:
    """Return the id of a record that came without one: the same for the same record, whoever sends it again."""
    wire = event.to_dict()
    if wire["conversationId"] is None:
        del wire["conversationId"]  # added later: the ids derived before stay the same
    content = json.dumps({"topic": topic, **wire}, sort_keys=True, ensure_ascii=False)
    return str(uuid.uuid5(DERIVED_ID_NAMESPACE, content))


def _known_user_id(user_id: str) -> int:
    """Return the id of the user a record names, who must be known here."""
    pk = parse_int_id(user_id)
    if pk is None or not User.objects.filter(pk=pk).exists():
        raise Unprocessable(f"unknown user {user_id!r}")
    return pk


### NEW_MESSAGE ###


def sender_name_of(event: ChatMessage) -> str:
    """Return the name a notification gives the sender of a message: the display name when set."""
    pk = parse_int_id(event.sender_id)
    display_name = (
        Profile.objects.filter(user_id=pk).values_list("display_name", flat=True).first() if pk is not None else None
    )
    return display_name or event.sender_name or f"user {event.sender_id}"


def notification_for_new_message(
    *, user_id: int | str, event: ChatMessage, sender_name: str | None = None
) -> Notification | None:
    """Tell an offline recipient about a message, coalescing into its unread notification.

    `sender_name` is `sender_name_of(event)` (looked up when not given).
    Idempotent: a message the notification already covers (a redelivered
    record), or one the user has read meanwhile, changes nothing and
    returns None.
    """
    sender = sender_name if sender_name is not None else sender_name_of(event)
    with transaction.atomic():
        # The participant's row first, as `notifications_mark_read_up_to` meets it (a watermark batch
        # updates it before it reads the notifications): a read that commits first is seen here, and
        # one that commits after sees this notification.
        read_seq = (
            Participant.objects.select_for_update()
            .filter(conversation_id=event.conversation_id, user_id=user_id)
            .values_list("last_read_seq", flat=True)
            .first()
        )
        if read_seq is not None and event.seq <= read_seq:
            return None
        current = (
            Notification.objects.select_for_update()
            .filter(
                user_id=user_id,
                conversation_id=event.conversation_id,
                type=Notification.Type.NEW_MESSAGE,
                read=False,
            )
            .order_by("-created_at")
            .first()
        )
        if current is not None and current.last_seq is not None and event.seq <= current.last_seq:
            return None
        if current is None:
            conversation = Conversation.objects.filter(pk=event.conversation_id).only("kind", "title").first()
            if conversation is None:
                return None
            current = Notification(
                user_id=user_id,
                type=Notification.Type.NEW_MESSAGE,
                conversation=conversation,
                first_seq=event.seq,
                sender_name=sender,
                created_at=timezone.now(),
            )
        elif current.sender_name != sender:
            # Another sender in a group; in a direct conversation the same one, renamed since.
            kind = Conversation.objects.filter(pk=event.conversation_id).values_list("kind", flat=True).first()
            current.sender_name = sender if kind == Conversation.Kind.DIRECT else ""
        current.last_seq = event.seq
        current.message_count += 1
        current.related_entity_id = event.message_id
        current.title, current.content = _new_message_text(current, event)
        _publish(current)
        return current


def _new_message_text(notification: Notification, event: ChatMessage) -> tuple[str, str]:
    if notification.sender_name:
        place = f"from {notification.sender_name}"
    else:
        title = Conversation.objects.filter(pk=event.conversation_id).values_list("title", flat=True).first()
        place = f"in {title or 'a group'}"
    if notification.message_count == 1:
        return f"New message {place}", event.content[:200]
    return f"{notification.message_count} new messages {place}", f"Latest: {event.content[:180]}"


### SYSTEM ###


def notification_send_system(*, user: AbstractBaseUser, title: str, content: str) -> Notification:
    """Send a SYSTEM notification to one user."""
    title, content = _clean_system_text(title, content)
    with transaction.atomic():
        notification = Notification(
            user_id=user.pk, type=Notification.Type.SYSTEM, title=title, content=content, created_at=timezone.now()
        )
        _publish(notification)
    return notification


def notification_broadcast_system(*, title: str, content: str) -> Iterator[int]:
    """Send a SYSTEM notification to every active user, in batches; yield how many each batch sent."""
    title, content = _clean_system_text(title, content)
    user_ids = User.objects.filter(is_active=True).order_by("pk").values_list("pk", flat=True)
    batch: list[int] = []
    for user_id in user_ids.iterator(chunk_size=SYSTEM_BATCH_SIZE):
        batch.append(user_id)
        if len(batch) == SYSTEM_BATCH_SIZE:
            yield _send_system_batch(batch, title, content)
            batch = []
    if batch:
        yield _send_system_batch(batch, title, content)


def _send_system_batch(user_ids: list[int], title: str, content: str) -> int:
    with transaction.atomic():
        now = timezone.now()
        for user_id in user_ids:
            _publish(
                Notification(
                    user_id=user_id, type=Notification.Type.SYSTEM, title=title, content=content, created_at=now
                )
            )
    return len(user_ids)


def _clean_system_text(title: Any, content: Any) -> tuple[str, str]:
    if not isinstance(title, str) or not 1 <= len(title.strip()) <= MAX_TITLE_CHARS:
        raise ValidationFailed({"title": f"Must be 1 to {MAX_TITLE_CHARS} characters."})
    if not isinstance(content, str) or len(content) > MAX_CONTENT_CHARS:
        raise ValidationFailed({"content": f"Must be at most {MAX_CONTENT_CHARS} characters."})
    return title.strip(), content.strip()


### Reading state ###


def notification_mark_read(*, user: AbstractBaseUser, notification_id: Any) -> None:
    """Mark one of the user's notifications read, and tell the user's other sockets."""
    with transaction.atomic():
        notification = (
            Notification.objects.select_for_update()
            .filter(user_id=user.pk, pk=_notification_id(notification_id))
            .first()
        )
        if notification is None:
            raise NotFound()
        if not notification.read:
            notification.read = True
            _publish(notification)


def notifications_mark_all_read(*, user: AbstractBaseUser) -> int:
    """Mark all of the user's notifications read; return how many changed."""
    with transaction.atomic():
        # In id order, as every writer that locks several of them: two never wait on each other.
        unread = list(Notification.objects.select_for_update().filter(user_id=user.pk, read=False).order_by("pk"))
        for notification in unread:
            notification.read = True
            _publish(notification)
    return len(unread)


def notifications_mark_read_up_to(reads: list[ReadMove]) -> int:
    """Mark read the NEW_MESSAGE notifications that users' read watermarks now pass; return how many.

    Called with a watermark batch's read moves, in its transaction (see
    `messaging.services.on_read_moved`): one statement finds the unread
    notifications the moves cover, whatever the batch's size; only when it
    finds some, one UPDATE and one outbox insert announce them, so every
    socket of their users (the other tabs) gets the `notification` frame
    with `read: true`, as after `notification_mark_read`.
    """
    covered = Q()
    for move in reads:
        covered |= Q(user_id=move.user_id, conversation_id=move.conversation_id, last_seq__lte=move.read_seq)
    notifications = list(
        Notification.objects.select_for_update()
        .filter(covered, type=Notification.Type.NEW_MESSAGE, read=False)
        .order_by("pk")
    )
    if not notifications:
        return 0
    now = _now_ms()
    for notification in notifications:
        notification.read = True
        _stamp(notification, now)
    Notification.objects.bulk_update(notifications, ["read", "updated_at"])
    outbox_enqueue_many(topic=NOTIFICATIONS, payloads=[notification_wire(n) for n in notifications])
    return len(notifications)


def _notification_id(value: Any) -> str:
    """Parse a notification id from a client; anything that cannot be one is simply not found."""
    if not isinstance(value, str) or not 0 < len(value) <= MAX_ID_CHARS or not storable_text(value):
        raise NotFound()
    return value
