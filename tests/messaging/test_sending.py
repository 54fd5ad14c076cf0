"""Group commit: the sends of one conversation stored together, in order, each with its own answer."""

import asyncio
import json
import threading

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.test.utils import CaptureQueriesContext

from core.errors import NotFound
from kafka_bridge.models import OutboxRecord
from messaging import checks, services
from messaging.events import ChatMessage
from messaging.models import Message, Receipt
from messaging.sending import ConversationSendQueue

User = get_user_model()


@pytest.fixture
def group(db):
    users = [User.objects.create_user(username=f"g{i}", password="x") for i in range(4)]
    conversation, _ = services.conversation_create(creator=users[0], participant_ids=[u.pk for u in users[1:3]])
    return conversation, users  # users[3] is not in it


def draft(user, client_message_id, content="hi"):
    return checks.check_message(sender=user, content=content, client_message_id=client_message_id)


def test_a_batch_is_stored_in_order_in_one_transaction(group):
    conversation, (a, b, c, _) = group
    services.conversation_member_ids(conversation.pk)  # as in a running process: members already known
    with CaptureQueriesContext(connection) as queries:
        outcomes = services.messages_store(
            conversation_id=conversation.pk, drafts=[draft(a, "a1"), draft(b, "b1"), draft(a, "a2")]
        )
    assert [(m.client_message_id, m.seq, created) for m, created in outcomes] == [
        ("a1", 1, True),
        ("b1", 2, True),
        ("a2", 3, True),
    ]
    # The seq, the messages, the receipts, the outbox: four statements, however many messages.
    writes = [q["sql"] for q in queries.captured_queries if not q["sql"].startswith(("SAVEPOINT", "RELEASE"))]
    assert len(writes) == 4, writes
    assert Receipt.objects.filter(message__client_message_id="b1").count() == 2
    events = [ChatMessage.decode(bytes(r.value)) for r in OutboxRecord.objects.order_by("id")]
    assert [(e.client_message_id, e.seq) for e in events] == [("a1", 1), ("b1", 2), ("a2", 3)]
    assert sorted(events[1].recipient_ids) == sorted([str(a.pk), str(c.pk)])


def test_an_outsider_in_a_batch_is_refused_alone(group):
    conversation, (a, _b, _c, outsider) = group
    outcomes = services.messages_store(conversation_id=conversation.pk, drafts=[draft(outsider, "x1"), draft(a, "a1")])
    assert isinstance(outcomes[0], NotFound)
    message, created = outcomes[1]
    assert created and message.seq == 1
    assert list(Message.objects.values_list("client_message_id", flat=True)) == ["a1"]


def test_a_repeat_in_a_batch_gets_its_original_and_the_rest_is_stored(group):
    conversation, (a, b, _c, _) = group
    (first, _created), *_ = services.messages_store(conversation_id=conversation.pk, drafts=[draft(a, "a1")])
    outcomes = services.messages_store(
        conversation_id=conversation.pk, drafts=[draft(b, "b1"), draft(a, "a1", "again"), draft(b, "b2")]
    )
    assert [(m.client_message_id, m.seq, created) for m, created in outcomes] == [
        ("b1", 2, True),
        ("a1", 1, False),
        ("b2", 3, True),
    ]
    assert outcomes[1][0].pk == first.pk and outcomes[1][0].content == "hi"
    assert sorted(Message.objects.values_list("seq", flat=True)) == [1, 2, 3]


@pytest.mark.django_db(transaction=True)
def test_sends_that_wait_behind_a_transaction_share_the_next_one(monkeypatch):
    users = [User.objects.create_user(username=f"q{i}", password="x") for i in range(3)]
    conversation, _ = services.conversation_create(creator=users[0], participant_ids=[u.pk for u in users[1:]])
    batches = []
    first_may_commit = threading.Event()
    store = services.messages_store

    def recording_store(*, conversation_id, drafts):
        batches.append([d.client_message_id for d in drafts])
        if len(batches) == 1:
            first_may_commit.wait(10)  # holds the conversation while the others arrive
        return store(conversation_id=conversation_id, drafts=drafts)

    monkeypatch.setattr(services, "messages_store", recording_store)

    async def burst():
        queue = ConversationSendQueue()
        first = asyncio.ensure_future(queue.send(conversation.pk, draft(users[0], "m0")))
        while not batches:
            await asyncio.sleep(0.01)
        rest = [asyncio.ensure_future(queue.send(conversation.pk, draft(users[i % 3], f"m{i}"))) for i in range(1, 6)]
        await asyncio.sleep(0.05)
        first_may_commit.set()
        return await asyncio.gather(first, *rest)

    outcomes = asyncio.run(burst())
    assert [m.seq for m, _ in outcomes] == [1, 2, 3, 4, 5, 6]
    # The first went alone at once; the five that queued behind it shared one commit.
    assert batches == [["m0"], ["m1", "m2", "m3", "m4", "m5"]]


def test_confirmations_of_several_users_share_one_transaction(group):
    conversation, (a, b, c, _) = group
    (m1, _), (m2, _) = services.messages_store(conversation_id=conversation.pk, drafts=[draft(a, "a1"), draft(b, "b1")])
    with CaptureQueriesContext(connection) as queries:
        changed = services.receipts_mark_delivered(confirmations=[(b.pk, {m1.pk}), (c.pk, {m1.pk, m2.pk})])
    assert changed == [1, 2]
    assert sum(q["sql"] == "COMMIT" for q in queries.captured_queries) <= 1  # one transaction (a savepoint in tests)
    m1.refresh_from_db()
    m2.refresh_from_db()
    assert m1.status == "DELIVERED"  # both recipients have it
    assert m2.status == "SENT"  # a has not confirmed yet
    events = [json.loads(bytes(r.value)) for r in OutboxRecord.objects.filter(topic="message-status-events")]
    assert sorted((e["messageId"], e["userId"], e["senderId"]) for e in events) == sorted(
        [(str(m1.pk), str(b.pk), str(a.pk)), (str(m1.pk), str(c.pk), str(a.pk)), (str(m2.pk), str(c.pk), str(b.pk))]
    )
    # Confirming again changes nothing and announces nothing.
    assert services.receipts_mark_delivered(confirmations=[(b.pk, {m1.pk}), (c.pk, {m2.pk})]) == [0, 0]
    assert OutboxRecord.objects.filter(topic="message-status-events").count() == 3
