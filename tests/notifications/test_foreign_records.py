"""Notifications records of other producers, in the seed's shape: stored once under their id, or refused."""

import pytest
from django.contrib.auth import get_user_model

from kafka_bridge.payloads import Unprocessable
from notifications.events import Notification as NotificationEvent
from notifications.models import Notification
from notifications.services import notification_record, notification_store

User = get_user_model()


def seed_notification(user_id, **changes) -> NotificationEvent:
    """The seed's example notification, with a real user in place of its placeholder."""
    fields = {
        "id": "notif-111",
        "userId": str(user_id),
        "title": "New Message",
        "content": "You have a new message from John",
        "type": "NEW_MESSAGE",
        "relatedEntityId": "msg-789",
        "read": False,
        "createdAt": "2025-11-11T22:30:00",
    }
    return NotificationEvent.from_dict({k: v for k, v in {**fields, **changes}.items() if v is not ...})


def take(event: NotificationEvent) -> tuple[NotificationEvent, bool]:
    record = notification_record(event=event, topic="notifications")
    return record, notification_store(event=record)


@pytest.fixture
def ann(db):
    return User.objects.create_user(username="ann", password="x")


def test_any_string_id_is_stored_once_under_it(ann):
    record, created = take(seed_notification(ann.pk))
    again, created_again = take(seed_notification(ann.pk))
    assert created and not created_again and record == again
    stored = Notification.objects.get()
    assert stored.pk == "notif-111" and stored.user_id == ann.pk
    assert record.created_at == "2025-11-11T22:30:00.000Z"  # no zone: UTC
    assert stored.created_at.isoformat() == "2025-11-11T22:30:00+00:00"


def test_a_record_without_id_gets_one_that_a_repeat_gets_too(ann):
    first, created = take(seed_notification(ann.pk, id=...))
    repeat, created_again = take(seed_notification(ann.pk, id=...))
    other, created_other = take(seed_notification(ann.pk, id=..., title="Another"))
    assert first.id and first.id == repeat.id != other.id
    assert created and not created_again and created_other
    assert set(Notification.objects.values_list("pk", flat=True)) == {first.id, other.id}


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"userId": "user-123"}, "unknown user 'user-123'"),
        ({"userId": "999999999"}, "unknown user '999999999'"),
        ({"createdAt": "2025-02-30T10:00:00"}, "createdAt '2025-02-30T10:00:00' is not an ISO 8601 time"),
        ({"id": "x" * 101}, "id must be 1 to 100 characters"),
        ({"id": ""}, "id must be 1 to 100 characters"),
        ({"title": "a\x00b"}, "title holds a NUL character"),
        ({"content": "\ud800"}, "content holds a NUL character or a lone surrogate"),
    ],
)
def test_a_record_that_cannot_be_stored_is_refused_with_the_reason(ann, changes, reason):
    event = seed_notification(ann.pk, **changes)
    with pytest.raises(Unprocessable, match=reason):
        take(event)
    assert not Notification.objects.exists()


def test_a_record_reusing_another_users_id_is_refused(ann):
    ben = User.objects.create_user(username="ben", password="x")
    take(seed_notification(ann.pk))
    with pytest.raises(Unprocessable, match="belongs to another user"):
        take(seed_notification(ben.pk, updatedAt="2025-11-12T00:00:00Z"))
    assert Notification.objects.get().user_id == ann.pk
