"""Conversations that change (PROTOCOL.md §7): each change an event in the sequence, decided by rights.py."""

import json
import threading
import uuid
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.utils import timezone

from core.errors import Forbidden, NotFound, ValidationFailed
from kafka_bridge.models import OutboxRecord
from messaging import changes, selectors, services
from messaging.models import Conversation, Message, Participant

User = get_user_model()


@pytest.fixture
def people(db):
    return [User.objects.create_user(username=n, password="x") for n in ("ann", "ben", "cat", "dan")]


@pytest.fixture
def group(people):
    ann, ben, cat, _dan = people
    conversation, _ = services.conversation_create(creator=ann, participant_ids=[ben.pk, cat.pk], title="team")
    return conversation


def send(sender, conversation, content="hi"):
    return services.message_send(
        sender=sender, conversation_id=conversation.pk, content=content, client_message_id=uuid.uuid4().hex
    )[0]


def chat_records():
    return [json.loads(bytes(r.value)) for r in OutboxRecord.objects.filter(topic="chat-messages").order_by("id")]


def seqs(conversation):
    return list(Message.objects.filter(conversation=conversation).order_by("seq").values_list("seq", "kind"))


def member(conversation, user):
    return Participant.objects.get(conversation=conversation, user=user)


def last_seq(conversation):
    return Conversation.objects.get(pk=conversation.pk).last_seq


### Membership ###


def test_the_creator_of_a_group_is_its_admin_and_direct_conversations_have_none(people):
    ann, ben, cat, _ = people
    group, _ = services.conversation_create(creator=ann, participant_ids=[ben.pk, cat.pk])
    direct, _ = services.conversation_create(creator=ann, participant_ids=[ben.pk])
    assert {p.user_id: p.role for p in group.memberships.all()} == {ann.pk: "admin", ben.pk: "member", cat.pk: "member"}
    assert {p.role for p in direct.memberships.all()} == {"member"}
    assert {p.joined_seq for p in group.memberships.all()} == {1}


def test_an_added_member_gets_the_event_and_what_follows_but_not_what_came_before(people, group):
    ann, ben, cat, dan = people
    send(ann, group, "before")
    changes.conversation_add_members(actor=ann, conversation_id=group.pk, user_ids=[str(dan.pk), ben.pk])
    send(ben, group, "after")
    assert seqs(group) == [(1, "text"), (2, "member_added"), (3, "text")]
    added = chat_records()[1]
    assert added["kind"] == "member_added" and added["meta"] == {"userIds": [str(dan.pk)]}  # ben was in: ignored
    assert added["content"] == "ann added dan"
    assert sorted(added["recipientIds"]) == sorted(str(u.pk) for u in (ben, cat, dan))
    assert str(dan.pk) in chat_records()[2]["recipientIds"]
    d = member(group, dan)
    assert (d.joined_seq, d.delivered_seq, d.last_read_seq, d.role) == (2, 1, 1, "member")
    history = selectors.message_history(user=dan, conversation_id=group.pk)
    assert [m.seq for m in history] == [2, 3]
    pending, _ = selectors.messages_pending_for_user(user=dan, limit=10)
    assert [m.seq for m in pending] == [2, 3]
    (summary,) = selectors.conversation_summaries(
        [selectors.conversation_get_for_user(user=dan, conversation_id=group.pk)]
    )
    assert summary["unreadCount"] == 1  # the text after joining, not the event
    assert {p["id"]: p["joinedSeq"] for p in summary["participants"]}[str(dan.pk)] == 2
    # Adding only people already in changes nothing and uses no seq.
    changes.conversation_add_members(actor=ann, conversation_id=group.pk, user_ids=[dan.pk])
    assert last_seq(group) == 3


def test_a_removed_member_gets_the_event_then_nothing_and_cannot_send(people, group):
    ann, ben, cat, _ = people
    send(ben, group, "mine")
    event = changes.conversation_remove_member(actor=ann, conversation_id=group.pk, user_id=str(ben.pk))
    assert (event.kind, event.seq, event.content, event.meta) == (
        "member_removed",
        2,
        "ann removed ben",
        {"userIds": [str(ben.pk)]},
    )
    assert str(ben.pk) in chat_records()[-1]["recipientIds"]  # so that ben learns it
    with pytest.raises(NotFound):
        send(ben, group)
    send(cat, group, "later")
    assert str(ben.pk) not in chat_records()[-1]["recipientIds"]
    # Not listed any more; history up to the removal stays readable; sync gives the event, not later messages.
    assert not selectors.conversations_for_user(ben).filter(pk=group.pk).exists()
    with pytest.raises(NotFound):
        selectors.conversation_get_for_user(user=ben, conversation_id=group.pk)
    assert [m.seq for m in selectors.message_history(user=ben, conversation_id=group.pk)] == [1, 2]
    pending, _ = selectors.messages_pending_for_user(user=ben, limit=10)
    assert [m.seq for m in pending] == [1, 2]
    assert selectors.conversation_tails(user=ben)[0]["lastSeq"] == 2
    # Confirming up to the leaving stops sync; a confirmation past it is clamped there.
    assert services.conversation_mark_received(user=ben, conversation_id=group.pk, up_to_seq=3) is True
    assert member(group, ben).delivered_seq == 2
    assert selectors.messages_pending_for_user(user=ben, limit=10) == ([], False)
    assert selectors.users_with_pending([ben.pk]) == set()


def test_leaving_as_the_last_admin_hands_the_group_to_the_longest_standing_member(people, group):
    ann, ben, _cat, dan = people
    changes.conversation_add_members(actor=ann, conversation_id=group.pk, user_ids=[dan.pk])
    event = changes.conversation_remove_member(actor=ann, conversation_id=group.pk, user_id=ann.pk)
    assert (event.kind, event.content) == ("member_left", "ann left")
    assert seqs(group) == [(1, "member_added"), (2, "member_left"), (3, "role_changed")]
    handover = Message.objects.get(conversation=group, seq=3)
    assert handover.meta == {"userIds": [str(ben.pk)], "role": "admin"}  # ben joined at 1, before dan
    assert member(group, ben).role == "admin" and member(group, ann).left_seq == 2
    records = chat_records()
    assert records[-2]["senderId"] == str(ann.pk)  # her other devices learn it
    assert str(ann.pk) not in [records[-1]["senderId"], *records[-1]["recipientIds"]]  # then nothing
    # The new admin can do what admins do.
    changes.conversation_rename(actor=ben, conversation_id=group.pk, title="ben's")
    assert Conversation.objects.get(pk=group.pk).title == "ben's"


def test_a_member_who_left_and_is_added_again_sees_from_the_new_joining_only(people, group):
    ann, ben, _, _ = people
    send(ann, group, "one")
    changes.conversation_remove_member(actor=ben, conversation_id=group.pk, user_id=ben.pk)
    send(ann, group, "while away")
    changes.conversation_add_members(actor=ann, conversation_id=group.pk, user_ids=[ben.pk])
    b = member(group, ben)
    assert (b.joined_seq, b.left_seq, b.delivered_seq) == (4, None, 3)
    assert [m.seq for m in selectors.message_history(user=ben, conversation_id=group.pk)] == [4]


def test_rename_and_roles_are_events_for_admins_only(people, group):
    ann, ben, _, _ = people
    with pytest.raises(Forbidden):
        changes.conversation_rename(actor=ben, conversation_id=group.pk, title="mine")
    renamed = changes.conversation_rename(actor=ann, conversation_id=group.pk, title="  new  ")
    assert renamed.title == "new"
    assert (
        chat_records()[-1]["meta"] == {"title": "new"}
        and chat_records()[-1]["content"] == 'ann renamed the group to "new"'
    )
    changes.conversation_rename(actor=ann, conversation_id=group.pk, title="new")  # the same: no event
    event = changes.conversation_set_role(actor=ann, conversation_id=group.pk, user_id=ben.pk, role="admin")
    assert (event.kind, event.meta, event.content) == (
        "role_changed",
        {"userIds": [str(ben.pk)], "role": "admin"},
        "ann made ben an admin",
    )
    assert changes.conversation_set_role(actor=ann, conversation_id=group.pk, user_id=ben.pk, role="admin") is None
    assert seqs(group) == [(1, "renamed"), (2, "role_changed")]
    # Now ben may step ann down; the last admin may not step down.
    changes.conversation_set_role(actor=ben, conversation_id=group.pk, user_id=ann.pk, role="member")
    with pytest.raises(ValidationFailed):
        changes.conversation_set_role(actor=ben, conversation_id=group.pk, user_id=ben.pk, role="member")
    assert last_seq(group) == 3


def test_refusals_store_nothing_and_use_no_seq(people, group):
    ann, ben, cat, dan = people
    direct, _ = services.conversation_create(creator=ann, participant_ids=[ben.pk])
    inactive = User.objects.create_user(username="gone", password="x", is_active=False)
    refusals = [
        # Not a member: as an unknown conversation.
        (NotFound, lambda: changes.conversation_rename(actor=dan, conversation_id=group.pk, title="x")),
        (NotFound, lambda: changes.conversation_add_members(actor=dan, conversation_id=group.pk, user_ids=[dan.pk])),
        (NotFound, lambda: changes.conversation_rename(actor=ann, conversation_id=uuid.uuid4(), title="x")),
        (NotFound, lambda: changes.conversation_rename(actor=ann, conversation_id="nope", title="x")),
        # A member without the right.
        (Forbidden, lambda: changes.conversation_add_members(actor=ben, conversation_id=group.pk, user_ids=[dan.pk])),
        (Forbidden, lambda: changes.conversation_remove_member(actor=ben, conversation_id=group.pk, user_id=cat.pk)),
        (
            Forbidden,
            lambda: changes.conversation_set_role(actor=ben, conversation_id=group.pk, user_id=ben.pk, role="admin"),
        ),
        # Bad input.
        (
            ValidationFailed,
            lambda: changes.conversation_add_members(actor=ann, conversation_id=group.pk, user_ids=[10**9]),
        ),
        (
            ValidationFailed,
            lambda: changes.conversation_add_members(actor=ann, conversation_id=group.pk, user_ids=[inactive.pk]),
        ),
        (ValidationFailed, lambda: changes.conversation_add_members(actor=ann, conversation_id=group.pk, user_ids=[])),
        (
            ValidationFailed,
            lambda: changes.conversation_add_members(actor=ann, conversation_id=group.pk, user_ids=["x"]),
        ),
        (
            ValidationFailed,
            lambda: changes.conversation_remove_member(actor=ann, conversation_id=group.pk, user_id=dan.pk),
        ),
        (
            ValidationFailed,
            lambda: changes.conversation_set_role(actor=ann, conversation_id=group.pk, user_id=ann.pk, role="member"),
        ),
        (
            ValidationFailed,
            lambda: changes.conversation_set_role(actor=ann, conversation_id=group.pk, user_id=ben.pk, role="owner"),
        ),
        (ValidationFailed, lambda: changes.conversation_rename(actor=ann, conversation_id=direct.pk, title="x")),
        (
            ValidationFailed,
            lambda: changes.conversation_add_members(actor=ann, conversation_id=direct.pk, user_ids=[cat.pk]),
        ),
        (
            ValidationFailed,
            lambda: changes.conversation_remove_member(actor=ann, conversation_id=direct.pk, user_id=ann.pk),
        ),
    ]
    for error, attempt in refusals:
        with pytest.raises(error):
            attempt()
    assert last_seq(group) == 0 and last_seq(direct) == 0
    assert not Message.objects.exists() and not OutboxRecord.objects.exists()
    # And the same calls by those with the right work.
    changes.conversation_add_members(actor=ann, conversation_id=group.pk, user_ids=[dan.pk])
    assert last_seq(group) == 1


### Edits and deletes ###


def test_an_edit_replaces_the_content_and_history_shows_the_latest(people, group):
    ann, ben, _, _ = people
    original = send(ann, group, "helo")
    edit, created = changes.message_edit(
        sender=ann, message_id=str(original.pk), content=" hello ", client_message_id="e1"
    )
    assert created and (edit.kind, edit.seq, edit.refers_to_id, edit.meta) == (
        "edit",
        2,
        original.pk,
        {"content": "hello"},
    )
    again, created = changes.message_edit(sender=ann, message_id=original.pk, content="hello", client_message_id="e1")
    assert again.pk == edit.pk and not created and last_seq(group) == 2
    record = chat_records()[-1]
    assert (record["kind"], record["refersTo"], record["meta"]) == ("edit", str(original.pk), {"content": "hello"})
    history = selectors.messages_wire(selectors.message_history(user=ben, conversation_id=group.pk))
    assert history[0]["content"] == "hello" and history[0]["editedAt"] and history[0]["kind"] == "text"
    assert history[1]["kind"] == "edit" and history[1]["refersTo"] == str(original.pk)
    # Only text counts for unread: one message, however many edits.
    assert selectors.conversations_for_user(ben).get(pk=group.pk).unread_count == 1


def test_a_delete_leaves_a_tombstone_and_scrubs_the_edits(people, group):
    _, ben, _, _ = people
    original = send(ben, group, "oops")
    changes.message_edit(sender=ben, message_id=original.pk, content="secret", client_message_id="e1")
    event, created = changes.message_delete(actor=ben, message_id=original.pk, client_message_id="d1")
    assert created and (event.kind, event.meta, event.content) == ("delete", {}, "ben deleted a message")
    original.refresh_from_db()
    assert original.content == "" and original.deleted_at is not None
    assert Message.objects.get(kind="edit").meta == {"content": ""}
    # A delete of a deleted message, an edit of it, a delete of an event: refused, no seq used.
    for attempt in (
        lambda: changes.message_delete(actor=ben, message_id=original.pk),
        lambda: changes.message_edit(sender=ben, message_id=original.pk, content="x", client_message_id="e2"),
        lambda: changes.message_delete(actor=ben, message_id=event.pk),
    ):
        with pytest.raises(ValidationFailed):
            attempt()
    assert last_seq(group) == 3


def test_who_may_edit_and_delete(people, group, settings):
    ann, ben, cat, dan = people
    bens = send(ben, group, "ben's")
    with pytest.raises(Forbidden):
        changes.message_edit(sender=ann, message_id=bens.pk, content="x", client_message_id="a1")  # admins do not edit
    with pytest.raises(Forbidden):
        changes.message_delete(actor=cat, message_id=bens.pk)
    with pytest.raises(NotFound):
        changes.message_delete(actor=dan, message_id=bens.pk)  # not a member
    with pytest.raises(NotFound):
        changes.message_delete(actor=ben, message_id=uuid.uuid4())
    other, _ = services.conversation_create(creator=ann, participant_ids=[ben.pk, cat.pk])
    with pytest.raises(NotFound):
        changes.message_delete(actor=ben, message_id=bens.pk, conversation_id=other.pk)  # not in that conversation
    # A member added later cannot reach what came before their joining.
    changes.conversation_add_members(actor=ann, conversation_id=group.pk, user_ids=[dan.pk])
    changes.conversation_set_role(actor=ann, conversation_id=group.pk, user_id=dan.pk, role="admin")
    with pytest.raises(NotFound):
        changes.message_delete(actor=dan, message_id=bens.pk)
    # The window.
    settings.CHAT_EDIT_WINDOW_SECONDS = 60
    Message.objects.filter(pk=bens.pk).update(created_at=timezone.now() - timedelta(seconds=61))
    with pytest.raises(ValidationFailed):
        changes.message_edit(sender=ben, message_id=bens.pk, content="late", client_message_id="b1")
    settings.CHAT_EDIT_WINDOW_SECONDS = 0
    # A group admin deletes others' messages; in a direct conversation only one's own.
    changes.message_delete(actor=ann, message_id=bens.pk)
    direct, _ = services.conversation_create(creator=ann, participant_ids=[ben.pk])
    mine = send(ann, direct)
    with pytest.raises(Forbidden):
        changes.message_delete(actor=ben, message_id=mine.pk)
    changes.message_edit(sender=ann, message_id=mine.pk, content="edited", client_message_id="a2")
    changes.message_delete(actor=ann, message_id=mine.pk)
    assert seqs(direct) == [(1, "text"), (2, "edit"), (3, "delete")]


### The member cache across processes ###


def test_a_send_sees_a_membership_change_another_process_made(people, group):
    ann, ben, cat, dan = people
    send(ann, group)  # this process now keeps the members
    # Another process changes the membership: only the database changes, not this process's cache.
    Participant.objects.filter(conversation=group, user=ben).update(left_seq=2)
    Participant.objects.create(conversation=group, user=dan, joined_seq=2, delivered_seq=1, last_read_seq=1)
    Message.objects.create(
        conversation=group, sender=ann, seq=2, kind="member_added", content="x", client_message_id="x"
    )
    Conversation.objects.filter(pk=group.pk).update(last_seq=2, members_seq=2)
    with pytest.raises(NotFound):
        send(ben, group)
    send(dan, group, "hello")  # not in the cache: read again before refusing
    sent = send(ann, group)
    assert sent.seq == 4 and sorted(chat_records()[-1]["recipientIds"]) == sorted([str(cat.pk), str(dan.pk)])


### Races, decided by the row lock ###


def _race(*calls):
    """Run the calls at once, each in its own thread and connection; return each one's result or error."""
    barrier = threading.Barrier(len(calls))
    results: list = [None] * len(calls)

    def run(i, call):
        try:
            barrier.wait()
            results[i] = call()
        except Exception as exc:
            results[i] = exc
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i, c)) for i, c in enumerate(calls)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


@pytest.mark.django_db(transaction=True)
def test_two_admins_removing_each_other_one_wins():
    ann, ben, cat = (User.objects.create_user(username=n, password="x") for n in ("ann", "ben", "cat"))
    group, _ = services.conversation_create(creator=ann, participant_ids=[ben.pk, cat.pk])
    changes.conversation_set_role(actor=ann, conversation_id=group.pk, user_id=ben.pk, role="admin")
    results = _race(
        lambda: changes.conversation_remove_member(actor=ann, conversation_id=group.pk, user_id=ben.pk),
        lambda: changes.conversation_remove_member(actor=ben, conversation_id=group.pk, user_id=ann.pk),
    )
    # The first to take the lock removes the other, who is then no member: refused as not found.
    assert sorted(type(r).__name__ for r in results) == ["Message", "NotFound"]
    assert Participant.objects.filter(conversation=group, left_seq__isnull=True).count() == 2
    assert seqs(group) == [(1, "role_changed"), (2, "member_removed")]


@pytest.mark.django_db(transaction=True)
def test_an_edit_racing_a_delete_is_refused_or_scrubbed():
    ann, ben = (User.objects.create_user(username=n, password="x") for n in ("ann", "ben"))
    direct, _ = services.conversation_create(creator=ann, participant_ids=[ben.pk])
    message = send(ann, direct, "first")
    results = _race(
        lambda: changes.message_edit(sender=ann, message_id=message.pk, content="second", client_message_id="e"),
        lambda: changes.message_delete(actor=ann, message_id=message.pk, client_message_id="d"),
    )
    message.refresh_from_db()
    assert message.content == "" and message.deleted_at is not None  # deleted either way
    edit = results[0]
    if isinstance(edit, ValidationFailed):  # the delete went first
        assert seqs(direct) == [(1, "text"), (2, "delete")]
    else:  # the edit went first: the delete scrubbed its text
        assert seqs(direct) == [(1, "text"), (2, "edit"), (3, "delete")]
        assert Message.objects.get(kind="edit").meta == {"content": ""}


@pytest.mark.django_db(transaction=True)
def test_a_send_racing_the_senders_removal_is_before_it_or_refused():
    ann, ben, cat = (User.objects.create_user(username=n, password="x") for n in ("ann", "ben", "cat"))
    group, _ = services.conversation_create(creator=ann, participant_ids=[ben.pk, cat.pk])
    services.conversation_member_ids(group.pk)  # as in a running process: the members are known
    results = _race(
        lambda: send(ben, group, "last words"),
        lambda: changes.conversation_remove_member(actor=ann, conversation_id=group.pk, user_id=ben.pk),
    )
    kinds = seqs(group)
    if isinstance(results[0], NotFound):
        assert kinds == [(1, "member_removed")]
    else:
        assert kinds == [(1, "text"), (2, "member_removed")]
    # No gaps either way, and ben sends nothing more.
    with pytest.raises(NotFound):
        send(ben, group)
