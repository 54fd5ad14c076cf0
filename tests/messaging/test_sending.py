"""Group commit: the sends of one conversation stored together, in order, each with its own answer."""

import asyncio
import threading

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.test.utils import CaptureQueriesContext

from core.errors import NotFound, RateLimited
from kafka_bridge.models import OutboxRecord
from messaging import checks, services
from messaging.events import ChatMessage
from messaging.models import Message
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
    # The seq, the messages, the outbox: three statements, however many messages, none per recipient.
    writes = [q["sql"] for q in queries.captured_queries if not q["sql"].startswith(("SAVEPOINT", "RELEASE"))]
    assert len(writes) == 3, writes
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


@pytest.mark.django_db(transaction=True)
def test_past_the_bound_of_sends_under_way_a_send_is_refused_with_a_retry_time(settings):
    a, b = (User.objects.create_user(username=f"o{i}", password="x") for i in range(2))
    conversation, _ = services.conversation_create(creator=a, participant_ids=[b.pk])
    settings.CHAT_MAX_SENDS_UNDER_WAY = 2
    settings.CHAT_OVERLOAD_RETRY_AFTER_MS = 700
    services.conversation_member_ids(conversation.pk)

    async def burst():
        queue = ConversationSendQueue()
        futures = [queue.submit(conversation.pk, draft(a, f"m{i}")) for i in range(2)]
        with pytest.raises(RateLimited) as refused:
            queue.submit(conversation.pk, draft(a, "m2"))
        stored = await asyncio.gather(*futures)
        # Room again once they are stored.
        again = await queue.send(conversation.pk, draft(a, "m3"))
        return refused.value, stored, again

    refused, stored, again = asyncio.run(burst())
    assert refused.frame_fields() == {"retryAfterMs": 700}
    assert [m.client_message_id for m, _ in stored] == ["m0", "m1"] and again[0].client_message_id == "m3"
    assert not Message.objects.filter(client_message_id="m2").exists()
