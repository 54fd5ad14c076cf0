"""Writes of conversations that change (PROTOCOL.md §7): membership, title, roles, edits and deletes.

Each change is an event in the conversation's own sequence, as in Matrix's
timeline: under the conversation's row lock (the lock a send takes) it
takes the next seq, is stored as a Message of its kind with a line any
client can show, and is queued for chat-messages through the outbox, to
the membership at that seq. Staff in the admin make membership changes
through the same functions (`as_staff`), so they produce the same events.
So a change and a send are ordered by the lock:
whatever commits first has the lower seq, and the one after sees it (a
member removed before their send is refused; an edit after a delete is
refused). `rights.py` decides who may do what, from what is read under the
lock; a refusal stores nothing and uses no seq.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Iterable
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from core.errors import Forbidden, NotFound, ValidationFailed
from core.parsing import parse_uuid
from kafka_bridge.produce.outbox import outbox_enqueue_many

from .checks import (
    check_client_message_id,
    check_content,
    check_message_id,
    check_role,
    check_title,
    check_user_id,
    check_user_ids,
)
from .events import CHAT_MESSAGES, ChatMessage
from .limits import MAX_PARTICIPANTS
from .models import Conversation, Message, MessageKind, Participant
from .rights import (
    ADMIN,
    MEMBER,
    check_may_change_message,
    check_may_manage,
    check_member,
    check_removal,
    check_role_change,
    longest_standing,
)
from .wire import chat_message_event

User = get_user_model()


class _Change:
    """A conversation under its row lock until the commit: its current members and the events appended to it."""

    def __init__(self, conversation_id: uuid.UUID) -> None:
        # A write first, as a send's UPDATE: it takes the row lock (PostgreSQL), or SQLite's one write lock, at once.
        if not Conversation.objects.filter(pk=conversation_id).update(last_seq=F("last_seq")):
            raise NotFound()
        self.conversation = Conversation.objects.get(pk=conversation_id)
        self.members = {
            p.user_id: p for p in Participant.objects.filter(conversation_id=conversation_id, left_seq__isnull=True)
        }
        self.events: list[ChatMessage] = []
        self.membership_changed = False
        self._names: dict[int, str] = {}

    @property
    def next_seq(self) -> int:
        """Return the seq the next event takes."""
        return self.conversation.last_seq + 1

    def name(self, user_id: int) -> str:
        """Return how a user is named in event lines: the display name, else the username."""
        if user_id not in self._names:
            self.names([user_id])
        return self._names[user_id]

    def names(self, user_ids: Iterable[int]) -> list[str]:
        """Return the names of several users, reading those not read yet at once."""
        wanted = list(user_ids)
        missing = [uid for uid in wanted if uid not in self._names]
        for pk, username, display_name in User.objects.filter(pk__in=missing).values_list(
            "pk", "username", "profile__display_name"
        ):
            self._names[pk] = display_name or username
        return [self._names.get(uid, f"user {uid}") for uid in wanted]

    def append(
        self,
        *,
        sender_id: int,
        kind: str,
        content: str,
        meta: dict[str, Any] | None,
        recipients: Iterable[int],
        refers_to: Message | None = None,
        client_message_id: str | None = None,
    ) -> Message:
        """Store an event at the next seq and queue its record for `recipients` (the membership at that seq)."""
        message = Message.objects.create(
            conversation=self.conversation,
            sender_id=sender_id,
            seq=self.next_seq,
            kind=kind,
            content=content,
            meta=meta,
            refers_to=refers_to,
            client_message_id=client_message_id or f"{kind}:{uuid.uuid4().hex}",
        )
        self.conversation.last_seq = message.seq
        ids = sorted(set(recipients) - {sender_id})
        self.events.append(chat_message_event(message, [str(uid) for uid in ids], self.name(sender_id)))
        return message

    def finish(self, **fields: Any) -> None:
        """Write the conversation's new last seq (and members_seq, title) and queue the events' records."""
        if not self.events and not fields:
            return
        if self.membership_changed:
            # Every process's next send to this conversation sees it and reads the members again.
            fields["members_seq"] = self.conversation.last_seq
        Conversation.objects.filter(pk=self.conversation.pk).update(last_seq=self.conversation.last_seq, **fields)
        for name, value in fields.items():
            setattr(self.conversation, name, value)
        if self.events:
            outbox_enqueue_many(topic=CHAT_MESSAGES, payloads=self.events)


def _actor(change: _Change, user: AbstractBaseUser, *, as_staff: bool = False) -> Participant:
    """Return the membership the change is made with: the user's own, or, for staff in the admin, an admin's."""
    if not as_staff:
        return check_member(change.members, user.pk)
    if not (user.is_active and getattr(user, "is_staff", False)):
        raise Forbidden("Only staff act on groups they are not admins of.")
    # Staff act as a group admin would, through the same events, without being a member.
    return Participant(conversation=change.conversation, user_id=user.pk, role=ADMIN, joined_seq=0)


### Membership ###


def conversation_add_members(
    *,
    actor: AbstractBaseUser,
    conversation_id: uuid.UUID | str,
    user_ids: Collection[int | str],
    as_staff: bool = False,
) -> Conversation:
    """Add users to a group (a group admin's right): one `member_added` event; those already in are ignored.

    The added see the conversation from that event's seq on (their
    `joinedSeq`), not earlier; their watermarks start just below it, so they
    never hold up the status of older messages.
    """
    wanted = check_user_ids(list(user_ids))
    with transaction.atomic():
        change = _Change(_conversation_uuid(conversation_id))
        check_may_manage(change.conversation, _actor(change, actor, as_staff=as_staff))
        new = sorted(wanted - set(change.members))
        known = set(User.objects.filter(pk__in=new, is_active=True).values_list("pk", flat=True))
        if unknown := [uid for uid in new if uid not in known]:
            raise ValidationFailed({"userIds": f"Unknown users: {unknown}."})
        if len(change.members) + len(new) > MAX_PARTICIPANTS:
            raise ValidationFailed({"userIds": f"A group has at most {MAX_PARTICIPANTS} members."})
        if not new:
            return change.conversation
        seq = change.next_seq
        before = {p.user_id: p for p in Participant.objects.filter(conversation=change.conversation, user_id__in=new)}
        for user_id in new:
            joined = before.get(user_id) or Participant(conversation=change.conversation, user_id=user_id)
            # Back after leaving: the earlier stretch is not theirs to read again; watermarks only move forward.
            joined.joined_seq, joined.left_seq, joined.role = seq, None, MEMBER
            joined.delivered_seq = max(joined.delivered_seq, seq - 1)
            joined.last_read_seq = max(joined.last_read_seq, seq - 1)
            joined.save()
        names = ", ".join(change.names(new))
        change.append(
            sender_id=actor.pk,
            kind=MessageKind.MEMBER_ADDED,
            content=f"{change.name(actor.pk)} added {names}",
            meta={"userIds": [str(uid) for uid in new]},
            recipients=[*change.members, *new],
        )
        change.membership_changed = True
        change.finish()
    return change.conversation


def conversation_remove_member(
    *, actor: AbstractBaseUser, conversation_id: uuid.UUID | str, user_id: int | str, as_staff: bool = False
) -> Message:
    """End a membership: a member leaves (`user_id` is their own; `member_left`) or an admin removes one.

    The departing member receives the event and nothing after it; their
    history up to it stays readable to them. When the last admin goes, the
    longest-standing member becomes admin, by a `role_changed` event right
    after.
    """
    with transaction.atomic():
        change = _Change(_conversation_uuid(conversation_id))
        member = _actor(change, actor, as_staff=as_staff)
        target = check_removal(change.conversation, member, _user_id(user_id), change.members)
        recipients = list(change.members)
        leaving = target.user_id == actor.pk
        seq = change.next_seq
        was_admin = target.role == ADMIN
        target.left_seq, target.role = seq, MEMBER
        target.save(update_fields=["left_seq", "role"])
        del change.members[target.user_id]
        event = change.append(
            sender_id=actor.pk,
            kind=MessageKind.MEMBER_LEFT if leaving else MessageKind.MEMBER_REMOVED,
            content=f"{change.name(actor.pk)} left"
            if leaving
            else f"{change.name(actor.pk)} removed {change.name(target.user_id)}",
            meta={"userIds": [str(target.user_id)]},
            recipients=recipients,
        )
        if was_admin and not any(m.role == ADMIN for m in change.members.values()):
            _hand_over(change)
        change.membership_changed = True
        change.finish()
    return event


def _hand_over(change: _Change) -> None:
    """Make the longest-standing member admin, as an event: a group keeps at least one admin."""
    heir = longest_standing(change.members)
    if heir is None:
        return  # nobody left
    heir.role = ADMIN
    heir.save(update_fields=["role"])
    change.append(
        # Sent as the heir: the one who left gets nothing after leaving, not even this.
        sender_id=heir.user_id,
        kind=MessageKind.ROLE_CHANGED,
        content=f"{change.name(heir.user_id)} is now an admin",
        meta={"userIds": [str(heir.user_id)], "role": ADMIN},
        recipients=change.members,
    )


def conversation_set_role(
    *,
    actor: AbstractBaseUser,
    conversation_id: uuid.UUID | str,
    user_id: int | str,
    role: str,
    as_staff: bool = False,
) -> Message | None:
    """Make a member admin or member (a group admin's right): a `role_changed` event; None when it had that role."""
    role = check_role(role)
    with transaction.atomic():
        change = _Change(_conversation_uuid(conversation_id))
        target = check_role_change(
            change.conversation, _actor(change, actor, as_staff=as_staff), _user_id(user_id), role, change.members
        )
        if target.role == role:
            return None
        target.role = role
        target.save(update_fields=["role"])
        made = "an admin" if role == ADMIN else "a member"
        event = change.append(
            sender_id=actor.pk,
            kind=MessageKind.ROLE_CHANGED,
            content=f"{change.name(actor.pk)} made {change.name(target.user_id)} {made}",
            meta={"userIds": [str(target.user_id)], "role": role},
            recipients=change.members,
        )
        change.finish()
    return event


def conversation_rename(
    *, actor: AbstractBaseUser, conversation_id: uuid.UUID | str, title: Any, as_staff: bool = False
) -> Conversation:
    """Set a group's title (a group admin's right): a `renamed` event; nothing when the title is the same."""
    title = check_title(title)
    with transaction.atomic():
        change = _Change(_conversation_uuid(conversation_id))
        check_may_manage(change.conversation, _actor(change, actor, as_staff=as_staff))
        if title == change.conversation.title:
            return change.conversation
        line = f'renamed the group to "{title}"' if title else "removed the group's title"
        change.append(
            sender_id=actor.pk,
            kind=MessageKind.RENAMED,
            content=f"{change.name(actor.pk)} {line}",
            meta={"title": title},
            recipients=change.members,
        )
        change.finish(title=title)
    return change.conversation


### Edits and deletes ###


def message_edit(
    *,
    sender: AbstractBaseUser,
    message_id: uuid.UUID | str,
    content: Any,
    client_message_id: Any,
    conversation_id: uuid.UUID | str | None = None,
) -> tuple[Message, bool]:
    """Replace the content of one's own text message: an `edit` event; return (event, created).

    A repeat of the clientMessageId returns the original event and changes nothing.
    """
    content = check_content(content)
    return _change_message(
        actor=sender,
        message_id=message_id,
        client_message_id=check_client_message_id(client_message_id),
        conversation_id=conversation_id,
        kind=MessageKind.EDIT,
        content=content,
    )


def message_delete(
    *,
    actor: AbstractBaseUser,
    message_id: uuid.UUID | str,
    client_message_id: Any = None,
    conversation_id: uuid.UUID | str | None = None,
) -> tuple[Message, bool]:
    """Delete a text message (its sender, or a group admin): a `delete` event, the message a tombstone.

    Return (event, created); a repeat of the clientMessageId returns the
    original event. Without a clientMessageId (REST) a repeat is refused,
    as a delete of a deleted message.
    """
    return _change_message(
        actor=actor,
        message_id=message_id,
        client_message_id=check_client_message_id(client_message_id) if client_message_id is not None else None,
        conversation_id=conversation_id,
        kind=MessageKind.DELETE,
        content="",
    )


def _change_message(
    *,
    actor: AbstractBaseUser,
    message_id: uuid.UUID | str,
    client_message_id: str | None,
    conversation_id: uuid.UUID | str | None,
    kind: str,
    content: str,
) -> tuple[Message, bool]:
    target_id = check_message_id(message_id)
    in_conversation = _conversation_uuid(conversation_id) if conversation_id is not None else None
    if client_message_id is not None and (repeat := _repeat(actor, client_message_id, target_id, kind)):
        return repeat, False
    located = Message.objects.filter(pk=target_id).values_list("conversation_id", flat=True).first()
    if located is None or (in_conversation is not None and located != in_conversation):
        raise NotFound()
    try:
        with transaction.atomic():
            change = _Change(located)
            member = _actor(change, actor)
            # Read again under the lock: an edit racing a delete sees what committed first.
            target = check_may_change_message(
                change.conversation,
                member,
                Message.objects.filter(pk=target_id).first(),
                deleting=kind == MessageKind.DELETE,
                now=timezone.now(),
            )
            now = timezone.now()
            if kind == MessageKind.EDIT:
                target.content, target.edited_at = content, now
                target.save(update_fields=["content", "edited_at"])
                line, meta = "edited a message", {"content": content}
            else:
                target.content, target.deleted_at = "", now
                target.save(update_fields=["content", "deleted_at"])
                # A tombstone everywhere: the edits of a deleted message no longer hold its text.
                Message.objects.filter(refers_to=target, kind=MessageKind.EDIT).update(meta={"content": ""})
                line, meta = "deleted a message", {}
            event = change.append(
                sender_id=actor.pk,
                kind=kind,
                content=f"{change.name(actor.pk)} {line}",
                meta=meta,
                refers_to=target,
                recipients=change.members,
                client_message_id=client_message_id,
            )
            change.finish()
    except IntegrityError:
        # The same clientMessageId stored meanwhile (a resend racing the first): answer with the original.
        if client_message_id is not None and (repeat := _repeat(actor, client_message_id, target_id, kind)):
            return repeat, False
        raise
    return event, True


def _repeat(actor: AbstractBaseUser, client_message_id: str, target_id: uuid.UUID, kind: str) -> Message | None:
    """Return the event a clientMessageId already stored, when it is this same change."""
    original = Message.objects.filter(sender_id=actor.pk, client_message_id=client_message_id).first()
    if original is None:
        return None
    if original.kind != kind or original.refers_to_id != target_id:
        raise ValidationFailed({"clientMessageId": "Already used for another message."})
    return original


def _conversation_uuid(value: uuid.UUID | str) -> uuid.UUID:
    return value if isinstance(value, uuid.UUID) else parse_uuid(value)


def _user_id(value: int | str) -> int:
    return check_user_id(value)
