"""Receipts: per-recipient DELIVERED and READ, the read watermark and the sender's aggregate status."""

import json
import uuid

import pytest
from django.contrib.auth import get_user_model

from core.errors import NotFound, ValidationFailed
from kafka_bridge.models import OutboxRecord
from messaging import selectors, services
from messaging.models import Message, Participant, Receipt

User = get_user_model()


@pytest.fixture
def trio(db):
    a, b, c = (User.objects.create_user(username=n, password="x") for n in ("ann", "ben", "cat"))
    group, _ = services.conversation_create(creator=a, participant_ids=[b.pk, c.pk])
    return a, b, c, group


def send(sender, conversation, n=1):
    return [
        services.message_send(
            sender=sender, conversation_id=conversation.pk, content=f"m{i}", client_message_id=uuid.uuid4().hex
        )[0]
        for i in range(n)
    ]


def status_events():
    return [
        json.loads(bytes(r.value)) for r in OutboxRecord.objects.filter(topic="message-status-events").order_by("id")
    ]


def test_received_is_per_recipient_and_aggregates(trio):
    a, b, c, group = trio
    (message,) = send(a, group)
    assert services.messages_mark_received(user=b, message_ids=[str(message.pk)]) == 1
    message.refresh_from_db()
    assert message.status == "SENT"  # cat has not received it yet
    assert services.messages_mark_received(user=c, message_ids=[str(message.pk)]) == 1
    message.refresh_from_db()
    assert message.status == "DELIVERED"
    events = status_events()
    assert [(e["status"], e["userId"], e["senderId"]) for e in events] == [
        ("DELIVERED", str(b.pk), str(a.pk)),
        ("DELIVERED", str(c.pk), str(a.pk)),
    ]
    assert events[0]["messageId"] == str(message.pk) and events[0]["conversationId"] == str(group.pk)
    # Keyed by the sender, who must be told.
    assert set(OutboxRecord.objects.filter(topic="message-status-events").values_list("key", flat=True)) == {str(a.pk)}


def test_received_is_idempotent_and_ignores_foreign_ids(trio):
    a, b, _c, group = trio
    (message,) = send(a, group)
    (own,) = send(b, group)
    outsider = User.objects.create_user(username="out", password="x")
    assert services.messages_mark_received(user=b, message_ids=[str(message.pk)]) == 1
    before = OutboxRecord.objects.count()
    assert services.messages_mark_received(user=b, message_ids=[str(message.pk)]) == 0  # twice
    assert services.messages_mark_received(user=b, message_ids=[str(own.pk)]) == 0  # own message
    assert services.messages_mark_received(user=outsider, message_ids=[str(message.pk)]) == 0  # not addressed
    assert services.messages_mark_received(user=b, message_ids=[str(uuid.uuid4()), "garbage"]) == 0  # unknown
    assert OutboxRecord.objects.count() == before
    assert Receipt.objects.filter(user=outsider).count() == 0


@pytest.mark.parametrize("message_ids", [[], "id", None, [1, 2], ["x"] * 501])
def test_received_rejects_bad_lists(trio, message_ids):
    with pytest.raises(ValidationFailed):
        services.messages_mark_received(user=trio[1], message_ids=message_ids)


def test_read_watermark_marks_everything_up_to_it_and_one_event_per_sender(trio):
    a, b, c, group = trio
    send(a, group, 3)  # seq 1-3
    send(c, group, 2)  # seq 4-5
    send(b, group, 1)  # seq 6: b's own
    send(a, group, 1)  # seq 7: after the watermark
    assert services.conversation_mark_read(user=b, conversation_id=group.pk, up_to_seq=6) == 5
    read = Receipt.objects.filter(user=b, read_at__isnull=False)
    assert sorted(read.values_list("seq", flat=True)) == [1, 2, 3, 4, 5]
    assert not read.filter(delivered_at__isnull=True).exists()  # READ implies DELIVERED
    events = status_events()
    assert sorted((e["senderId"], e["upToSeq"], e["status"]) for e in events) == sorted(
        [(str(a.pk), 6, "READ"), (str(c.pk), 6, "READ")]
    )
    latest = {e["senderId"]: e["messageId"] for e in events}
    assert latest[str(a.pk)] == str(Message.objects.get(conversation=group, seq=3).pk)
    assert latest[str(c.pk)] == str(Message.objects.get(conversation=group, seq=5).pk)


def test_watermark_never_moves_back_or_past_the_last_message(trio):
    a, b, _c, group = trio
    send(a, group, 4)
    services.conversation_mark_read(user=b, conversation_id=group.pk, up_to_seq=3)
    before = OutboxRecord.objects.count()
    assert services.conversation_mark_read(user=b, conversation_id=group.pk, up_to_seq=1) == 0
    assert services.conversation_mark_read(user=b, conversation_id=group.pk, up_to_seq=3) == 0
    assert OutboxRecord.objects.count() == before
    participant = Participant.objects.get(conversation=group, user=b)
    assert participant.last_read_seq == 3
    services.conversation_mark_read(user=b, conversation_id=group.pk, up_to_seq=1000)
    participant.refresh_from_db()
    assert participant.last_read_seq == 4  # the future is not read


def test_aggregate_read_needs_every_recipient(trio):
    a, b, c, group = trio
    (message,) = send(a, group)
    services.conversation_mark_read(user=b, conversation_id=group.pk, up_to_seq=1)
    message.refresh_from_db()
    assert message.status == "SENT"  # ben read it, cat has nothing yet
    services.messages_mark_received(user=c, message_ids=[str(message.pk)])
    message.refresh_from_db()
    assert message.status == "DELIVERED"
    services.conversation_mark_read(user=c, conversation_id=group.pk, up_to_seq=1)
    message.refresh_from_db()
    assert message.status == "READ"


@pytest.mark.parametrize("up_to_seq", [-1, "3", None, 1.5, True])
def test_read_rejects_bad_seq(trio, up_to_seq):
    with pytest.raises(ValidationFailed):
        services.conversation_mark_read(user=trio[1], conversation_id=trio[3].pk, up_to_seq=up_to_seq)


def test_reading_someone_elses_conversation_is_not_found(trio):
    a, _b, _c, group = trio
    outsider = User.objects.create_user(username="out", password="x")
    send(a, group)
    with pytest.raises(NotFound):
        services.conversation_mark_read(user=outsider, conversation_id=group.pk, up_to_seq=1)
    with pytest.raises(NotFound):
        services.conversation_mark_read(user=outsider, conversation_id=uuid.uuid4(), up_to_seq=1)
    assert not Receipt.objects.filter(read_at__isnull=False).exists()


def test_unread_count_and_last_message_without_a_query_per_conversation(trio, django_assert_max_num_queries):
    a, b, c, group = trio
    direct, _ = services.conversation_create(creator=a, participant_ids=[b.pk])
    send(a, group, 3)
    send(c, group, 1)
    send(a, direct, 2)
    services.conversation_mark_read(user=b, conversation_id=group.pk, up_to_seq=2)
    with django_assert_max_num_queries(3):
        summaries = selectors.conversation_summaries(list(selectors.conversations_for_user(b)))
    by_id = {s["id"]: s for s in summaries}
    assert by_id[str(group.pk)]["unreadCount"] == 2
    assert by_id[str(group.pk)]["lastMessage"]["seq"] == 4
    assert by_id[str(direct.pk)]["unreadCount"] == 2
    assert by_id[str(direct.pk)]["lastSeq"] == 2
    # The sender's own messages are never unread for the sender.
    own = {s["id"]: s for s in selectors.conversation_summaries(list(selectors.conversations_for_user(a)))}
    assert own[str(direct.pk)]["unreadCount"] == 0


def test_pending_for_user_in_order_until_confirmed(trio):
    a, b, c, group = trio
    direct, _ = services.conversation_create(creator=a, participant_ids=[b.pk])
    send(a, group, 3)
    send(a, direct, 2)
    send(c, group, 1)
    messages, more = selectors.messages_pending_for_user(user=b, limit=4)
    assert more and len(messages) == 4
    by_conversation: dict = {}
    for m in messages:
        by_conversation.setdefault(m.conversation_id, []).append(m.seq)
    for seqs in by_conversation.values():
        assert seqs == sorted(seqs)
    services.messages_mark_received(user=b, message_ids=[str(m.pk) for m in messages])
    rest, more = selectors.messages_pending_for_user(user=b, limit=4)
    assert not more and len(rest) == 2
    assert not {m.pk for m in rest} & {m.pk for m in messages}
