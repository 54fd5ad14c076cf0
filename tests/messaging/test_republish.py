"""Stored messages produced again (manage.py republish): the records sending produced, by conversation or time."""

import io
import json
import uuid
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.utils import timezone

from core.errors import ValidationFailed
from kafka_bridge.models import OutboxRecord
from messaging import changes, republish, services
from messaging.models import Message
from messaging.republish import Selection, chat_message_records, check_selection, messages_republish
from users.services import profile_set_display_name

User = get_user_model()


@pytest.fixture
def people(db):
    ann, ben, cat, dan = (User.objects.create_user(username=n, password="x") for n in ("ann", "ben", "cat", "dan"))
    # Events name their sender by display name, text messages by username: both as sending did.
    profile_set_display_name(user=ann, display_name="Ann A.")
    return ann, ben, cat, dan


def send(sender, conversation, content="hi"):
    return services.message_send(
        sender=sender, conversation_id=conversation.pk, content=content, client_message_id=uuid.uuid4().hex
    )[0]


def first_records():
    """What sending queued for chat-messages, by message id (the tests never relay the outbox)."""
    values = [json.loads(bytes(r.value)) for r in OutboxRecord.objects.filter(topic="chat-messages").order_by("id")]
    return {v["messageId"]: v for v in values}


def stored(conversation=None):
    messages = Message.objects.order_by("conversation_id", "seq")
    return list(messages.filter(conversation=conversation) if conversation else messages)


def test_each_record_is_the_one_sending_produced_through_joins_departures_and_renames(people):
    ann, ben, cat, dan = people
    group, _ = services.conversation_create(creator=ann, participant_ids=[ben.pk, cat.pk], title="team")
    send(ann, group, "before dan")
    changes.conversation_add_members(actor=ann, conversation_id=group.pk, user_ids=[dan.pk])
    send(dan, group, "dan here")
    changes.conversation_remove_member(actor=ann, conversation_id=group.pk, user_id=cat.pk)
    changes.conversation_rename(actor=ann, conversation_id=group.pk, title="the team")
    changes.conversation_remove_member(actor=ben, conversation_id=group.pk, user_id=ben.pk)  # leaves
    send(ann, group, "after")
    direct, _ = services.conversation_create(creator=ben, participant_ids=[cat.pk])
    send(cat, direct, "a direct one")

    messages = stored()
    originals = first_records()
    assert len(messages) == len(originals) == 8
    for record in chat_message_records(messages):
        assert json.loads(record.encode()) == originals[record.message_id]
    # The membership at each seq decides, not today's: cat got what came before its removal, dan what came after.
    by_content = {r.content: r for r in chat_message_records(messages)}
    assert sorted(by_content["before dan"].recipient_ids) == sorted([str(ben.pk), str(cat.pk)])
    assert str(cat.pk) not in by_content["after"].recipient_ids
    assert str(dan.pk) in by_content["after"].recipient_ids
    assert by_content["a direct one"].recipient_id == str(ben.pk)


def test_an_edited_or_deleted_message_goes_as_it_is_stored_and_its_edit_and_delete_as_they_went(people):
    ann, ben, _cat, _dan = people
    direct, _ = services.conversation_create(creator=ann, participant_ids=[ben.pk])
    edited, deleted = send(ann, direct, "typo"), send(ann, direct, "oops")
    changes.message_edit(sender=ann, message_id=edited.pk, content="fixed", client_message_id="edit-1")
    changes.message_delete(actor=ann, message_id=deleted.pk)

    originals = first_records()
    records = {r.message_id: r for r in chat_message_records(stored(direct))}
    assert records[str(edited.pk)].content == "fixed"
    assert records[str(deleted.pk)].content == ""
    for message_id, record in records.items():
        if message_id not in (str(edited.pk), str(deleted.pk)):
            assert json.loads(record.encode()) == originals[message_id]  # the edit and the delete events
    assert {r.kind for r in records.values()} == {"text", "edit", "delete"}


def test_batches_cover_every_selected_message_once_in_conversation_and_seq_order(people, monkeypatch):
    ann, ben, cat, _dan = people
    one, _ = services.conversation_create(creator=ann, participant_ids=[ben.pk])
    two, _ = services.conversation_create(creator=ann, participant_ids=[cat.pk])
    for index in range(7):
        send(ann, one, f"one {index}")
        send(cat, two, f"two {index}")
    monkeypatch.setattr(republish, "BATCH_SIZE", 3)  # pages end inside a conversation and across two

    summary = republish.Summary()
    ids = [r.message_id for r in republish._records(Selection(since=timezone.now() - timedelta(hours=1)), summary)]
    assert ids == [str(m.pk) for m in stored()]
    assert summary.records == 14 and summary.conversations == {one.pk, two.pk}
    only_two = [r.seq for r in republish._records(Selection(conversation_id=two.pk), republish.Summary())]
    assert only_two == list(range(1, 8))


def test_a_time_range_takes_messages_created_from_since_and_before_until(people):
    ann, ben, _cat, _dan = people
    direct, _ = services.conversation_create(creator=ann, participant_ids=[ben.pk])
    old, middle, new = send(ann, direct, "old"), send(ann, direct, "middle"), send(ann, direct, "new")
    start = timezone.now() - timedelta(days=3)
    for days, message in ((3, old), (2, middle), (1, new)):
        Message.objects.filter(pk=message.pk).update(created_at=timezone.now() - timedelta(days=days))
    selection = check_selection(
        conversation_id=None,
        since=(start + timedelta(hours=12)).isoformat(),
        until=(timezone.now() - timedelta(days=1, hours=12)).isoformat(),
    )
    summary = messages_republish(selection=selection, dry_run=True)  # a dry run needs no broker
    assert summary.records == 1
    assert summary.first_created == summary.last_created == Message.objects.get(pk=middle.pk).created_at


def test_a_dry_run_says_what_would_go_and_produces_nothing(people):
    ann, ben, _cat, _dan = people
    direct, _ = services.conversation_create(creator=ann, participant_ids=[ben.pk])
    send(ann, direct)
    send(ben, direct)
    out = io.StringIO()
    call_command("republish", "--conversation", str(direct.pk), "--dry-run", stdout=out)
    (line,) = out.getvalue().splitlines()
    assert line.startswith("Would republish 2 record(s) of 1 conversation(s) to chat-messages, created ")
    assert line.endswith(f"(conversation {direct.pk}); dry run, nothing produced")


@pytest.mark.parametrize(
    ("arguments", "said"),
    [
        ([], "Name a conversation, a time range (since, until), or both."),
        (["--conversation", "nope"], "--conversation: 'nope' is not a conversation id."),
        (["--conversation", str(uuid.UUID(int=7))], f"--conversation: No conversation {uuid.UUID(int=7)}."),
        (["--since", "yesterday"], "--since: 'yesterday' is not an ISO 8601 time (e.g. 2025-11-11T22:30:00Z)."),
        (
            ["--since", "2025-11-12T00:00:00Z", "--until", "2025-11-11T00:00:00"],
            "--until: The range is empty: until must be after since.",
        ),
    ],
)
def test_a_selection_that_is_none_or_not_one_is_refused_with_what_is_wrong(db, arguments, said):
    with pytest.raises(CommandError) as refused:
        call_command("republish", *arguments, "--dry-run")
    assert str(refused.value) == said


def test_times_without_a_zone_are_utc(db):
    selection = check_selection(conversation_id=None, since="2025-11-11T22:30:00", until=None)
    assert selection.since is not None and selection.since.utcoffset() == timedelta(0)
    with pytest.raises(ValidationFailed):
        check_selection(conversation_id=None, since=None, until=None)
