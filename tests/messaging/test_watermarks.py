"""Delivery and read state by watermark (PROTOCOL.md §6): one number per participant, records per move."""

import json
import uuid

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.test.utils import CaptureQueriesContext

from core.errors import NotFound, ValidationFailed
from kafka_bridge.models import OutboxRecord
from messaging import selectors, services
from messaging.limits import MAX_UP_TO_SEQ
from messaging.models import Message, Participant

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


def marks(conversation, user):
    p = Participant.objects.get(conversation=conversation, user=user)
    return p.delivered_seq, p.last_read_seq


def status_of(message):
    (wire,) = selectors.messages_wire([Message.objects.get(pk=message.pk)])
    return wire["status"]


def summary(e):
    return (e["status"], e["userId"], e["senderId"], e["upToSeq"], e.get("aggregate"))


def test_received_moves_one_watermark_and_announces_per_participant_then_aggregate(trio):
    a, b, c, group = trio
    m1, m2 = send(a, group, 2)
    assert services.conversation_mark_received(user=b, conversation_id=group.pk, up_to_seq=2) is True
    assert marks(group, b) == (2, 0)
    assert status_of(m2) == "SENT"  # cat holds nothing yet
    # One record for the move, not one per message; no aggregate: cat is the floor.
    assert [summary(e) for e in status_events()] == [("DELIVERED", str(b.pk), str(a.pk), 2, None)]
    assert status_events()[0]["messageId"] == str(m2.pk)  # the sender's latest message covered

    assert services.conversation_mark_received(user=c, conversation_id=group.pk, up_to_seq=1) is True
    assert status_of(m1) == "DELIVERED" and status_of(m2) == "SENT"
    assert [summary(e) for e in status_events()[1:]] == [
        ("DELIVERED", str(c.pk), str(a.pk), 1, None),
        ("DELIVERED", None, str(a.pk), 1, True),  # the floor moved: everyone holds ann's message 1
    ]
    # Keyed by the sender, who must be told.
    assert set(OutboxRecord.objects.filter(topic="message-status-events").values_list("key", flat=True)) == {str(a.pk)}


def test_a_lower_or_equal_watermark_changes_nothing_and_one_past_the_end_is_clamped(trio):
    a, b, _c, group = trio
    send(a, group, 3)
    services.conversation_mark_received(user=b, conversation_id=group.pk, up_to_seq=2)
    before = OutboxRecord.objects.count()
    assert services.conversation_mark_received(user=b, conversation_id=group.pk, up_to_seq=2) is False
    assert services.conversation_mark_received(user=b, conversation_id=group.pk, up_to_seq=1) is False
    assert OutboxRecord.objects.count() == before
    assert marks(group, b) == (2, 0)
    assert services.conversation_mark_received(user=b, conversation_id=group.pk, up_to_seq=1000) is True
    assert marks(group, b) == (3, 0)  # nobody holds the future


@pytest.mark.parametrize("up_to_seq", [0, -1, "3", None, 1.5, True, MAX_UP_TO_SEQ + 1, 2**70])
def test_received_refuses_what_is_not_a_positive_seq_and_changes_nothing(trio, up_to_seq):
    a, b, _c, group = trio
    send(a, group)
    with pytest.raises(ValidationFailed):
        services.conversation_mark_received(user=b, conversation_id=group.pk, up_to_seq=up_to_seq)
    assert marks(group, b) == (0, 0)
    # The same conversation takes a good confirmation.
    assert services.conversation_mark_received(user=b, conversation_id=group.pk, up_to_seq=1) is True


def test_someone_elses_or_an_unknown_conversation_is_not_found(trio):
    a, b, _c, group = trio
    outsider = User.objects.create_user(username="out", password="x")
    send(a, group)
    for user, conversation_id in ((outsider, group.pk), (b, uuid.uuid4())):
        with pytest.raises(NotFound):
            services.conversation_mark_received(user=user, conversation_id=conversation_id, up_to_seq=1)
        with pytest.raises(NotFound):
            services.conversation_mark_read(user=user, conversation_id=conversation_id, up_to_seq=1)
    assert not OutboxRecord.objects.filter(topic="message-status-events").exists()
    assert services.conversation_mark_read(user=b, conversation_id=group.pk, up_to_seq=1) is True


def test_read_moves_both_watermarks_with_one_record_per_sender(trio):
    a, b, c, group = trio
    send(a, group, 3)  # seq 1-3
    send(c, group, 2)  # seq 4-5
    send(b, group, 1)  # seq 6: b's own
    send(a, group, 1)  # seq 7: after the watermark
    assert services.conversation_mark_read(user=b, conversation_id=group.pk, up_to_seq=6) is True
    assert marks(group, b) == (6, 6)  # READ implies DELIVERED
    per_participant = [e for e in status_events() if not e.get("aggregate")]
    assert sorted(summary(e) for e in per_participant) == sorted(
        [("READ", str(b.pk), str(a.pk), 6, None), ("READ", str(b.pk), str(c.pk), 6, None)]
    )
    latest = {e["senderId"]: e["messageId"] for e in per_participant}
    assert latest[str(a.pk)] == str(Message.objects.get(conversation=group, seq=3).pk)
    assert latest[str(c.pk)] == str(Message.objects.get(conversation=group, seq=5).pk)
    # cat's messages are read by everyone else (ben; ann has not), so no READ aggregate for cat yet.
    assert not [e for e in status_events() if e.get("aggregate") and e["status"] == "READ"]


def test_read_never_moves_back_and_stops_at_the_last_message(trio):
    a, b, _c, group = trio
    send(a, group, 4)
    services.conversation_mark_read(user=b, conversation_id=group.pk, up_to_seq=3)
    before = OutboxRecord.objects.count()
    assert services.conversation_mark_read(user=b, conversation_id=group.pk, up_to_seq=1) is False
    assert OutboxRecord.objects.count() == before
    services.conversation_mark_read(user=b, conversation_id=group.pk, up_to_seq=1000)
    assert marks(group, b) == (4, 4)


def test_status_needs_every_other_participant(trio):
    a, b, c, group = trio
    (message,) = send(a, group)
    services.conversation_mark_read(user=b, conversation_id=group.pk, up_to_seq=1)
    assert status_of(message) == "SENT"  # ben read it, cat holds nothing yet
    services.conversation_mark_received(user=c, conversation_id=group.pk, up_to_seq=1)
    assert status_of(message) == "DELIVERED"
    services.conversation_mark_read(user=c, conversation_id=group.pk, up_to_seq=1)
    assert status_of(message) == "READ"
    aggregates = [(e["status"], e["upToSeq"]) for e in status_events() if e.get("aggregate")]
    assert aggregates == [("DELIVERED", 1), ("READ", 1)]


def test_a_direct_conversation_gets_the_participant_record_and_the_aggregate(db):
    a, b = (User.objects.create_user(username=n, password="x") for n in ("ann", "ben"))
    direct, _ = services.conversation_create(creator=a, participant_ids=[b.pk])
    send(a, direct, 2)
    services.conversation_mark_received(user=b, conversation_id=direct.pk, up_to_seq=2)
    assert [summary(e) for e in status_events()] == [
        ("DELIVERED", str(b.pk), str(a.pk), 2, None),
        ("DELIVERED", None, str(a.pk), 2, True),
    ]


def test_a_big_group_gets_only_aggregates(trio, settings):
    a, b, c, group = trio
    settings.CHAT_RECEIPT_DETAIL_MAX_MEMBERS = 2
    send(a, group, 2)
    services.conversation_mark_received(user=b, conversation_id=group.pk, up_to_seq=2)
    assert status_events() == []  # the floor (cat) did not move, and there is no per-participant detail
    services.conversation_mark_received(user=c, conversation_id=group.pk, up_to_seq=2)
    assert [summary(e) for e in status_events()] == [("DELIVERED", None, str(a.pk), 2, True)]
    # The detail is on REST.
    assert selectors.conversation_receipts(user=a, conversation_id=group.pk) == [
        {"id": str(u.pk), "deliveredSeq": d, "readSeq": 0}
        for u, d in sorted([(a, 0), (b, 2), (c, 2)], key=lambda x: x[0].pk)
    ]


def test_message_ids_move_the_watermark_over_the_contiguous_run_only(trio):
    a, b, c, group = trio
    m1, m2 = send(a, group, 2)  # seq 1-2
    (own,) = send(b, group)  # seq 3: ben's own
    (m4,) = send(c, group)  # seq 4
    (m5,) = send(a, group)  # seq 5
    # 1 and 2, ben's own 3, then 5 past the gap at 4: the watermark stops at 3.
    assert services.messages_mark_received(user=b, message_ids=[str(m1.pk), str(m2.pk), str(m5.pk)]) is True
    assert marks(group, b) == (3, 0)
    pending, _more = selectors.messages_pending_for_user(user=b, limit=10)
    assert [m.seq for m in pending] == [4, 5]  # 5 comes again with 4
    assert services.messages_mark_received(user=b, message_ids=[str(m4.pk), str(m5.pk)]) is True
    assert marks(group, b) == (5, 0)
    # Repeats, unknown and malformed ids, and ids of others' conversations change nothing.
    outsider = User.objects.create_user(username="out", password="x")
    assert services.messages_mark_received(user=b, message_ids=[str(m5.pk), str(uuid.uuid4()), "garbage"]) is False
    assert services.messages_mark_received(user=outsider, message_ids=[str(m1.pk)]) is False
    assert not Participant.objects.filter(user=outsider).exists()
    assert own.seq == 3


@pytest.mark.parametrize("message_ids", [[], "id", None, [1, 2], ["x"] * 501])
def test_message_ids_refuse_bad_lists(trio, message_ids):
    with pytest.raises(ValidationFailed):
        services.messages_mark_received(user=trio[1], message_ids=message_ids)


def test_confirmations_of_several_users_share_one_transaction_of_a_few_statements(trio):
    a, b, c, group = trio
    direct, _ = services.conversation_create(creator=a, participant_ids=[b.pk])
    send(a, group, 3)
    send(a, direct, 2)
    confirmations = [
        services.Confirmation(user_id=b.pk, conversation_id=group.pk, delivered=3),
        services.Confirmation(user_id=c.pk, conversation_id=group.pk, delivered=2, read=1),
        services.Confirmation(user_id=b.pk, conversation_id=direct.pk, delivered=2),
        services.Confirmation(user_id=b.pk, conversation_id=group.pk, delivered=1),  # merged with the first
        services.Confirmation(user_id=c.pk, conversation_id=direct.pk, delivered=1),  # not cat's
    ]
    with CaptureQueriesContext(connection) as queries:
        outcomes = services.watermarks_advance(confirmations=confirmations)
    assert outcomes == [True, True, True, True, None]
    statements = [q["sql"] for q in queries.captured_queries if not q["sql"].startswith(("SAVEPOINT", "RELEASE"))]
    # Lock, read the watermarks, one UPDATE for all, read the covered messages, one outbox INSERT,
    # and, as a read watermark moved, look up the NEW_MESSAGE notifications it covers (none here).
    assert len(statements) <= 6, statements
    assert marks(group, b) == (3, 0) and marks(group, c) == (2, 1) and marks(direct, b) == (2, 0)


def test_summaries_carry_both_watermarks_and_unread_counts_without_a_query_per_conversation(
    trio, django_assert_max_num_queries
):
    a, b, c, group = trio
    direct, _ = services.conversation_create(creator=a, participant_ids=[b.pk])
    send(a, group, 3)
    send(c, group, 1)
    send(a, direct, 2)
    services.conversation_mark_read(user=b, conversation_id=group.pk, up_to_seq=2)
    services.conversation_mark_received(user=c, conversation_id=group.pk, up_to_seq=4)
    with django_assert_max_num_queries(3):
        summaries = selectors.conversation_summaries(list(selectors.conversations_for_user(b)))
    by_id = {s["id"]: s for s in summaries}
    assert by_id[str(group.pk)]["unreadCount"] == 2
    assert by_id[str(group.pk)]["lastMessage"]["seq"] == 4
    assert by_id[str(direct.pk)]["unreadCount"] == 2
    people = {p["id"]: p for p in by_id[str(group.pk)]["participants"]}
    assert (people[str(b.pk)]["deliveredSeq"], people[str(b.pk)]["lastReadSeq"]) == (2, 2)
    assert (people[str(c.pk)]["deliveredSeq"], people[str(c.pk)]["lastReadSeq"]) == (4, 0)
    # cat's message 4: ann holds nothing, so it is SENT for cat.
    assert by_id[str(group.pk)]["lastMessage"]["status"] == "SENT"
    # The sender's own messages are never unread for the sender.
    own = {s["id"]: s for s in selectors.conversation_summaries(list(selectors.conversations_for_user(a)))}
    assert own[str(direct.pk)]["unreadCount"] == 0


def test_pending_is_everything_above_the_watermark_in_order_own_messages_included(trio):
    a, b, _c, group = trio
    direct, _ = services.conversation_create(creator=a, participant_ids=[b.pk])
    send(a, group, 3)
    send(a, direct, 2)
    send(b, group, 1)  # seq 4, ben's own, from another device
    messages, more = selectors.messages_pending_for_user(user=b, limit=4)
    assert more and len(messages) == 4
    by_conversation: dict = {}
    for m in messages:
        by_conversation.setdefault(m.conversation_id, []).append(m.seq)
    for seqs in by_conversation.values():
        assert seqs == sorted(seqs)
    tails = {t["conversationId"]: t for t in selectors.conversation_tails(user=b)}
    assert tails[str(group.pk)] == {"conversationId": str(group.pk), "lastSeq": 4, "deliveredSeq": 0, "readSeq": 0}
    services.conversation_mark_received(user=b, conversation_id=group.pk, up_to_seq=4)
    rest, more = selectors.messages_pending_for_user(user=b, limit=4)
    assert not more and [(m.conversation_id, m.seq) for m in rest] == [(direct.pk, 1), (direct.pk, 2)]
    assert [t["conversationId"] for t in selectors.conversation_tails(user=b)] == [str(direct.pk)]


def test_lagging_counts_only_messages_of_others(trio):
    a, b, c, group = trio
    send(a, group, 2)
    send(b, group, 1)
    services.conversation_mark_received(user=b, conversation_id=group.pk, up_to_seq=2)
    lagging = {(u, cid): (d, last) for u, cid, d, last in selectors.lagging_watermarks([a.pk, b.pk, c.pk])}
    # Ben lacks only his own message 3: not lagging. Cat lacks all three; ann lacks nothing of others but 3.
    assert lagging == {(c.pk, group.pk): (0, 3), (a.pk, group.pk): (0, 3)}
