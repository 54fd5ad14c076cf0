import json
import threading
import uuid

import pytest
from django.contrib.auth import get_user_model
from django.db import connection

from core.errors import NotFound, ValidationFailed
from kafka_bridge.models import OutboxRecord
from messaging import services
from messaging.events import ChatMessage
from messaging.models import Conversation, Message, Participant

User = get_user_model()


@pytest.fixture
def users(db):
    return [User.objects.create_user(username=f"u{i}", password="x") for i in range(4)]


def test_direct_conversation_is_one_per_pair(users):
    a, b, *_ = users
    first, created = services.conversation_create(creator=a, participant_ids=[b.pk])
    again, created_again = services.conversation_create(creator=b, participant_ids=[str(a.pk)])
    assert created and not created_again
    assert first.pk == again.pk
    assert first.kind == Conversation.Kind.DIRECT


def test_group_conversation_includes_creator(users):
    a, b, c, _ = users
    group, created = services.conversation_create(creator=a, participant_ids=[b.pk, c.pk], title=" Team ")
    assert created and group.kind == Conversation.Kind.GROUP and group.title == "Team"
    assert set(group.memberships.values_list("user_id", flat=True)) == {a.pk, b.pk, c.pk}


@pytest.mark.parametrize(
    "participant_ids",
    [[], ["not-a-number"], [999_999], [None]],
)
def test_conversation_create_rejects_bad_participants(users, participant_ids):
    with pytest.raises(ValidationFailed):
        services.conversation_create(creator=users[0], participant_ids=participant_ids)
    assert not Conversation.objects.exists()


def test_conversation_with_only_oneself_is_refused(users):
    with pytest.raises(ValidationFailed):
        services.conversation_create(creator=users[0], participant_ids=[users[0].pk])


def test_message_send_stores_the_message_alone_and_queues_record(users):
    a, b, c, _ = users
    group, _ = services.conversation_create(creator=a, participant_ids=[b.pk, c.pk])
    message, created = services.message_send(
        sender=a, conversation_id=str(group.pk), content="  hello  ", client_message_id="c1"
    )
    assert created and message.seq == 1 and message.content == "hello"
    # Nothing per recipient: their watermarks stay where they were until their clients confirm.
    assert set(Participant.objects.filter(conversation=group).values_list("delivered_seq", flat=True)) == {0}
    (record,) = OutboxRecord.objects.all()
    assert record.topic == "chat-messages" and record.key == str(group.pk)
    payload = ChatMessage.decode(bytes(record.value))
    assert payload.message_id == str(message.id)
    assert payload.sender_id == str(a.pk)
    assert payload.recipient_ids == sorted([str(b.pk), str(c.pk)])
    assert payload.recipient_id is None  # a group has no single recipient
    assert payload.seq == 1


def test_direct_message_names_the_single_recipient(users):
    a, b, *_ = users
    direct, _ = services.conversation_create(creator=a, participant_ids=[b.pk])
    services.message_send(sender=a, conversation_id=direct.pk, content="hi", client_message_id="c1")
    payload = json.loads(bytes(OutboxRecord.objects.get().value))
    assert payload["recipientId"] == str(b.pk) and payload["recipientIds"] == [str(b.pk)]
    # The seed's fields keep their names.
    assert {"content", "recipientId", "conversationId"} <= payload.keys()


def test_seq_is_per_conversation_and_gapless(users):
    a, b, c, _ = users
    one, _ = services.conversation_create(creator=a, participant_ids=[b.pk])
    two, _ = services.conversation_create(creator=a, participant_ids=[c.pk])
    seqs = [
        services.message_send(sender=a, conversation_id=conv.pk, content="x", client_message_id=f"m{i}")[0].seq
        for i, conv in enumerate([one, two, one, one, two])
    ]
    assert seqs == [1, 1, 2, 3, 2]


def test_resend_with_same_client_message_id_returns_original(users):
    a, b, *_ = users
    direct, _ = services.conversation_create(creator=a, participant_ids=[b.pk])
    first, created = services.message_send(sender=a, conversation_id=direct.pk, content="hi", client_message_id="same")
    again, created_again = services.message_send(
        sender=a, conversation_id=direct.pk, content="other text", client_message_id="same"
    )
    assert created and not created_again
    assert again.pk == first.pk and again.content == "hi"
    assert Message.objects.count() == 1 and OutboxRecord.objects.count() == 1


def test_client_message_id_of_another_conversation_is_refused(users):
    a, b, c, _ = users
    one, _ = services.conversation_create(creator=a, participant_ids=[b.pk])
    two, _ = services.conversation_create(creator=a, participant_ids=[c.pk])
    services.message_send(sender=a, conversation_id=one.pk, content="hi", client_message_id="same")
    with pytest.raises(ValidationFailed):
        services.message_send(sender=a, conversation_id=two.pk, content="hi", client_message_id="same")


@pytest.mark.parametrize(
    ("content", "client_message_id"),
    [("", "c"), ("   ", "c"), ("x" * 4001, "c"), (123, "c"), (None, "c"), ("ok", ""), ("ok", 5), ("ok", "x" * 101)],
)
def test_message_send_validation_changes_nothing(users, content, client_message_id):
    a, b, *_ = users
    direct, _ = services.conversation_create(creator=a, participant_ids=[b.pk])
    with pytest.raises(ValidationFailed):
        services.message_send(sender=a, conversation_id=direct.pk, content=content, client_message_id=client_message_id)
    assert not Message.objects.exists() and not OutboxRecord.objects.exists()
    direct.refresh_from_db()
    assert direct.last_seq == 0


def test_content_limit_counts_characters_after_trimming(users):
    a, b, *_ = users
    direct, _ = services.conversation_create(creator=a, participant_ids=[b.pk])
    message, _ = services.message_send(
        sender=a, conversation_id=direct.pk, content=" " + "é" * 4000 + " ", client_message_id="c"
    )
    assert len(message.content) == 4000


@pytest.mark.parametrize("conversation_id", ["nope", str(uuid.uuid4()), uuid.uuid4()])
def test_unknown_conversation_is_not_found(users, conversation_id):
    with pytest.raises(NotFound):
        services.message_send(sender=users[0], conversation_id=conversation_id, content="hi", client_message_id="c")


@pytest.mark.parametrize("conversation_id", [None, 42, ["x"]])
def test_missing_conversation_id_is_a_validation_error(users, conversation_id):
    with pytest.raises(ValidationFailed):
        services.message_send(sender=users[0], conversation_id=conversation_id, content="hi", client_message_id="c")


def test_someone_elses_conversation_is_not_found_and_unchanged(users):
    a, b, c, _ = users
    direct, _ = services.conversation_create(creator=a, participant_ids=[b.pk])
    with pytest.raises(NotFound) as outsider:
        services.message_send(sender=c, conversation_id=direct.pk, content="hi", client_message_id="c")
    with pytest.raises(NotFound) as unknown:
        services.message_send(sender=c, conversation_id=uuid.uuid4(), content="hi", client_message_id="c")
    assert str(outsider.value) == str(unknown.value)
    direct.refresh_from_db()
    assert direct.last_seq == 0 and not Message.objects.exists()


def test_typing_event_goes_to_the_others_only(users):
    a, b, c, _ = users
    group, _ = services.conversation_create(creator=a, participant_ids=[b.pk, c.pk])
    event = services.typing_event(user=b, conversation_id=str(group.pk), is_typing=True)
    assert event.recipient_ids == sorted([str(a.pk), str(c.pk)])
    assert event.user_id == str(b.pk) and event.is_typing is True and isinstance(event.timestamp, int)
    with pytest.raises(NotFound):
        services.typing_event(user=users[3], conversation_id=str(group.pk), is_typing=True)


@pytest.mark.django_db(transaction=True)
def test_concurrent_senders_get_distinct_gapless_seqs():
    if connection.vendor != "postgresql":
        pytest.fail("this test needs PostgreSQL (run it with make test)")
    senders = [User.objects.create_user(username=f"s{i}", password="x") for i in range(4)]
    group, _ = services.conversation_create(creator=senders[0], participant_ids=[s.pk for s in senders[1:]])
    errors: list[BaseException] = []

    def send_many(sender, n):
        try:
            for i in range(n):
                services.message_send(sender=sender, conversation_id=group.pk, content="x", client_message_id=f"{i}")
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=send_many, args=(s, 25)) for s in senders]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    seqs = sorted(Message.objects.filter(conversation=group).values_list("seq", flat=True))
    assert seqs == list(range(1, 101))
