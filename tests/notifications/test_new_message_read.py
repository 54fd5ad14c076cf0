"""NEW_MESSAGE notifications follow the read watermark, and name the sender as the page does (contract 1.3)."""

import json
import uuid

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.test.utils import CaptureQueriesContext

from kafka_bridge.models import OutboxRecord
from messaging import services
from messaging.wire import chat_message_event
from notifications.models import Notification
from notifications.services import notification_for_new_message, sender_name_of
from users.services import profile_set_display_name

User = get_user_model()


@pytest.fixture
def trio(db):
    ann, ben, cat = (User.objects.create_user(username=n, password="x") for n in ("ann", "ben", "cat"))
    direct, _ = services.conversation_create(creator=ann, participant_ids=[ben.pk])
    group, _ = services.conversation_create(creator=ann, participant_ids=[ben.pk, cat.pk], title="Trio")
    return ann, ben, cat, direct, group


def announce(sender, conversation, recipient, n=1):
    """Send `n` messages and have the offline recipient told of each, as the bridge's loop does."""
    for i in range(n):
        message, _ = services.message_send(
            sender=sender, conversation_id=conversation.pk, content=f"m{i}", client_message_id=uuid.uuid4().hex
        )
        event = chat_message_event(message, [str(recipient.pk)], sender.get_username())
        notification_for_new_message(user_id=recipient.pk, event=event)
    return message


def notification_records():
    return [json.loads(bytes(r.value)) for r in OutboxRecord.objects.filter(topic="notifications").order_by("id")]


def unread(user):
    return list(Notification.objects.filter(user=user, read=False))


def test_the_title_names_the_sender_by_display_name_when_set(trio):
    ann, ben, cat, direct, group = trio
    announce(ann, direct, ben, 2)
    (plain,) = unread(ben)
    assert plain.title == "2 new messages from ann"  # no display name: the username
    profile_set_display_name(user=ann, display_name="Ann Archer")
    message = announce(ann, direct, ben)
    # The same notification, coalesced: a direct conversation's one sender, renamed, keeps a name.
    (renamed,) = unread(ben)
    assert renamed.pk == plain.pk and renamed.title == "3 new messages from Ann Archer"
    assert sender_name_of(chat_message_event(message, [], "ann")) == "Ann Archer"
    # A group with two senders names the group instead.
    announce(ann, group, cat)
    announce(ben, group, cat)
    (in_group,) = unread(cat)
    assert in_group.title == "2 new messages in Trio"


def test_reading_past_the_announced_message_marks_it_read_and_tells_every_socket(trio):
    ann, ben, _cat, direct, _group = trio
    announce(ann, direct, ben, 3)
    (notification,) = unread(ben)
    before = len(notification_records())
    # Up to 2 of 3: the notification announces message 3, so it stays unread.
    services.conversation_mark_read(user=ben, conversation_id=direct.pk, up_to_seq=2)
    assert unread(ben) == [notification] and len(notification_records()) == before
    services.conversation_mark_read(user=ben, conversation_id=direct.pk, up_to_seq=3)
    assert unread(ben) == []
    (record,) = notification_records()[before:]
    assert (record["id"], record["read"], record["userId"]) == (notification.pk, True, str(ben.pk))
    assert record["conversationId"] == str(direct.pk)
    assert record["updatedAt"] > notification_records()[before - 1]["updatedAt"]  # a newer version
    # The next message starts a new notification.
    announce(ann, direct, ben)
    assert len(unread(ben)) == 1


def test_a_message_read_before_its_notification_is_made_is_not_announced(trio):
    ann, ben, _cat, direct, _group = trio
    message, _ = services.message_send(sender=ann, conversation_id=direct.pk, content="hi", client_message_id="c1")
    services.conversation_mark_read(user=ben, conversation_id=direct.pk, up_to_seq=1)
    event = chat_message_event(message, [str(ben.pk)], "ann")
    assert notification_for_new_message(user_id=ben.pk, event=event) is None
    # The control: a message not read yet is announced.
    later = announce(ann, direct, ben)
    (notification,) = unread(ben)
    assert notification.related_entity_id == str(later.pk)


def _statements_on_notifications(queries):
    return [q["sql"] for q in queries.captured_queries if "notifications_notification" in q["sql"]]


def test_a_batch_costs_one_statement_without_notifications_and_three_with_any_number(trio):
    ann, ben, cat, direct, group = trio
    for conversation in (direct, group):
        services.message_send(
            sender=ann, conversation_id=conversation.pk, content="x", client_message_id=uuid.uuid4().hex
        )
    reads = [
        services.Confirmation(user_id=ben.pk, conversation_id=direct.pk, read=1),
        services.Confirmation(user_id=ben.pk, conversation_id=group.pk, read=1),
        services.Confirmation(user_id=cat.pk, conversation_id=group.pk, read=1),
    ]
    with CaptureQueriesContext(connection) as queries:
        services.watermarks_advance(confirmations=reads)
    assert len(_statements_on_notifications(queries)) == 1  # the look-up, for the whole batch
    # Deliveries alone move no read watermark: nothing is looked up.
    services.message_send(sender=ann, conversation_id=group.pk, content="y", client_message_id="y")
    with CaptureQueriesContext(connection) as queries:
        services.watermarks_advance(
            confirmations=[services.Confirmation(user_id=cat.pk, conversation_id=group.pk, delivered=2)]
        )
    assert _statements_on_notifications(queries) == []
    # Three notifications of two users: the look-up, one UPDATE, and one outbox insert for all of them.
    announce(ann, direct, ben, 2)
    announce(cat, group, ben)
    announce(ben, group, cat)
    assert len(unread(ben)) == 2 and len(unread(cat)) == 1
    before = OutboxRecord.objects.count()
    with CaptureQueriesContext(connection) as queries:
        services.watermarks_advance(
            confirmations=[
                services.Confirmation(user_id=ben.pk, conversation_id=direct.pk, read=3),
                services.Confirmation(user_id=ben.pk, conversation_id=group.pk, read=4),
                services.Confirmation(user_id=cat.pk, conversation_id=group.pk, read=5),
            ]
        )
    assert len(_statements_on_notifications(queries)) == 2  # the look-up and the UPDATE
    outbox_inserts = [
        q for q in queries.captured_queries if q["sql"].startswith('INSERT INTO "kafka_bridge_outboxrecord')
    ]
    assert len(outbox_inserts) == 2  # status events, then the three notifications
    assert unread(ben) == unread(cat) == []
    assert [r["read"] for r in notification_records()[-3:]] == [True, True, True]
    assert OutboxRecord.objects.count() > before
