"""Reads of the messaging domain, each scoped to what one user may see."""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import Count, Exists, F, IntegerField, OuterRef, Q, QuerySet, Subquery
from django.db.models.functions import Coalesce, TruncMinute
from django.utils import timezone

from core.errors import NotFound
from core.parsing import parse_uuid
from users.selectors import PublicRow, public_users

from .checks import (
    check_conversation_cursor,
    check_conversation_page_limit,
    check_history_limit,
    conversation_cursor,
)
from .models import Conversation, Message, MessageKind, Participant
from .watermarks import Marks, Statuses
from .wire import message_wire


def conversations_for_user(user: AbstractBaseUser) -> QuerySet[Conversation]:
    """Return the user's conversations, annotated with the user's unread count.

    Only conversations the user is a member of now (one left is no longer
    listed). Unread: the text messages others sent above the user's read
    watermark (a range scan of the conversation's seq index, no row per
    reader); events (edits, membership changes) do not count.
    """
    read_seq = Participant.objects.filter(conversation=OuterRef("pk"), user_id=user.pk).values("last_read_seq")[:1]
    unread = (
        Message.objects.filter(conversation=OuterRef("pk"), seq__gt=OuterRef("read_seq"), kind=MessageKind.TEXT)
        .exclude(sender_id=user.pk)
        .order_by()
        .values("conversation")
        .annotate(n=Count("pk"))
        .values("n")
    )
    return (
        Conversation.objects.filter(memberships__user_id=user.pk, memberships__left_seq__isnull=True)
        .annotate(read_seq=Subquery(read_seq))
        .annotate(unread_count=Coalesce(Subquery(unread, output_field=IntegerField()), 0))
        .order_by("-created_at")
    )


def conversation_get_for_user(*, user: AbstractBaseUser, conversation_id: uuid.UUID | str) -> Conversation:
    """Return one of the user's conversations; NotFound if unknown or not the user's."""
    conversation = conversations_for_user(user).filter(pk=parse_uuid(conversation_id)).first()
    if conversation is None:
        raise NotFound()
    return conversation


def conversations_by_activity(user: AbstractBaseUser) -> QuerySet[Conversation]:
    """Return the user's conversations, the latest message (or creation) first, annotated `activity_at`."""
    last_message_at = Message.objects.filter(conversation=OuterRef("pk"), seq=OuterRef("last_seq")).values(
        "created_at"
    )[:1]
    return (
        conversations_for_user(user)
        .annotate(activity_at=Coalesce(Subquery(last_message_at), "created_at"))
        .order_by("-activity_at", "-pk")
    )


def conversation_page_for_user(
    *, user: AbstractBaseUser, cursor: str | None, limit: int | None = None
) -> tuple[list[Conversation], str | None]:
    """Return a page of the user's conversations by last activity, newest first, and the next page's cursor.

    A conversation that moves up while a client pages may be seen twice or
    not at all by that walk; clients learn of new activity live anyway.
    """
    after = check_conversation_cursor(cursor)
    limit = check_conversation_page_limit(limit)
    conversations = conversations_by_activity(user)
    if after is not None:
        at, conversation_id = after
        conversations = conversations.filter(Q(activity_at__lt=at) | Q(activity_at=at, pk__lt=conversation_id))
    page = list(conversations[: limit + 1])
    if len(page) <= limit:
        return page, None
    last = page[limit - 1]
    return page[:limit], conversation_cursor(last.activity_at, last.pk)  # type: ignore[attr-defined]


def conversation_summaries(conversations: list[Conversation]) -> list[dict[str, Any]]:
    """Return the contract's Conversation objects, with two queries for the whole list.

    Each participant (a current member) carries its watermarks,
    `deliveredSeq` and `lastReadSeq`, so that clients can show who holds
    and who has read what, its `role` and `joinedSeq`, and its presence
    (`online`, `lastSeenAt`: one look at Redis for the whole list).
    """
    ids = [c.pk for c in conversations]
    members: dict[Any, list[tuple[str, dict[str, Any]]]] = defaultdict(list)
    marks: dict[Any, dict[int, Marks]] = defaultdict(dict)
    rows: dict[str, PublicRow] = {}
    for (
        conversation_id,
        user_id,
        delivered_seq,
        last_read_seq,
        role,
        joined_seq,
        username,
        display_name,
        last_seen_at,
    ) in (
        Participant.objects.filter(conversation_id__in=ids, left_seq__isnull=True)
        .order_by("user_id")
        .values_list(
            "conversation_id",
            "user_id",
            "delivered_seq",
            "last_read_seq",
            "role",
            "joined_seq",
            "user__username",
            "user__profile__display_name",
            "user__profile__last_seen_at",
        )
    ):
        members[conversation_id].append(
            (
                str(user_id),
                {"deliveredSeq": delivered_seq, "lastReadSeq": last_read_seq, "role": role, "joinedSeq": joined_seq},
            )
        )
        marks[conversation_id][user_id] = Marks(delivered=delivered_seq, read=last_read_seq)
        rows[str(user_id)] = (user_id, username, display_name, last_seen_at)
    people = public_users(rows.values())
    last_seqs = Q()
    for c in conversations:
        if c.last_seq:
            last_seqs |= Q(conversation_id=c.pk, seq=c.last_seq)
    last_messages = {m.conversation_id: m for m in Message.objects.filter(last_seqs)} if last_seqs else {}
    return [
        {
            "id": str(c.pk),
            "kind": c.kind,
            "title": c.title,
            "participantIds": [user_id for user_id, _ in members[c.pk]],
            "participants": [{**people[user_id], **state} for user_id, state in members[c.pk]],
            "lastSeq": c.last_seq,
            "lastMessage": _with_status(last_messages[c.pk], Statuses.of_marks(marks[c.pk]))
            if c.pk in last_messages
            else None,
            "unreadCount": getattr(c, "unread_count", 0),
        }
        for c in conversations
    ]


def message_history(
    *,
    user: AbstractBaseUser,
    conversation_id: uuid.UUID | str,
    after_seq: int | None = None,
    before_seq: int | None = None,
    limit: int | None = None,
) -> list[Message]:
    """Return messages of one of the user's conversations, by seq ascending.

    With `before_seq` only, the newest `limit` messages before it (scrolling
    back); otherwise the oldest `limit` messages after `after_seq`. Only the
    stretch of the user's membership: from its `joined_seq`, and up to its
    leaving for a conversation the user has left (that stays readable).
    """
    membership = (
        Participant.objects.filter(conversation_id=parse_uuid(conversation_id), user_id=user.pk)
        .values_list("joined_seq", "left_seq")
        .first()
    )
    if membership is None:
        raise NotFound()
    joined_seq, left_seq = membership
    limit = check_history_limit(limit)
    messages = Message.objects.filter(conversation_id=parse_uuid(conversation_id), seq__gte=joined_seq)
    if left_seq is not None:
        messages = messages.filter(seq__lte=left_seq)
    if after_seq is not None:
        messages = messages.filter(seq__gt=after_seq)
    if before_seq is not None:
        messages = messages.filter(seq__lt=before_seq)
    if before_seq is not None and after_seq is None:
        return sorted(messages.order_by("-seq")[:limit], key=lambda m: m.seq)
    return list(messages.order_by("seq")[:limit])


def _with_status(message: Message, statuses: Statuses) -> dict[str, Any]:
    return message_wire(message, statuses.status(message.sender_id, message.seq))


def watermarks_of(conversation_ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, dict[int, Marks]]:
    """Return every current member's watermarks in each of the conversations, in one query.

    Departed members no longer count for the statuses of messages.
    """
    marks: dict[uuid.UUID, dict[int, Marks]] = defaultdict(dict)
    for conversation_id, user_id, delivered_seq, read_seq in Participant.objects.filter(
        conversation_id__in=set(conversation_ids), left_seq__isnull=True
    ).values_list("conversation_id", "user_id", "delivered_seq", "last_read_seq"):
        marks[conversation_id][user_id] = Marks(delivered=delivered_seq, read=read_seq)
    return marks


def messages_wire(messages: list[Message]) -> list[dict[str, Any]]:
    """Return the contract's Message objects, each with its status worked out from the watermarks."""
    statuses = {c: Statuses.of_marks(m) for c, m in watermarks_of(m.conversation_id for m in messages).items()}
    return [_with_status(m, statuses[m.conversation_id]) for m in messages]


def conversation_receipts(*, user: AbstractBaseUser, conversation_id: uuid.UUID | str) -> list[dict[str, Any]]:
    """Return every participant's watermarks in one of the user's conversations (per-participant detail)."""
    conversation = conversation_get_for_user(user=user, conversation_id=conversation_id)
    return [
        {"id": str(user_id), "deliveredSeq": delivered_seq, "readSeq": read_seq}
        for user_id, delivered_seq, read_seq in Participant.objects.filter(
            conversation=conversation, left_seq__isnull=True
        )
        .order_by("user_id")
        .values_list("user_id", "delivered_seq", "last_read_seq")
    ]


def messages_pending_for_user(*, user: AbstractBaseUser, limit: int) -> tuple[list[Message], bool]:
    """Return up to `limit` messages above the user's delivered watermarks, and whether more wait.

    Oldest first within each conversation, the user's own messages included
    (sent from another device, a client needs them to confirm a contiguous
    run). A conversation the user has left, up to its leaving (so that the
    user learns it). One range scan of the seq index per conversation.
    """
    pending = list(
        Message.objects.filter(
            Q(conversation__memberships__left_seq__isnull=True) | Q(seq__lte=F("conversation__memberships__left_seq")),
            conversation__memberships__user_id=user.pk,
            seq__gt=F("conversation__memberships__delivered_seq"),
        ).order_by("conversation_id", "seq")[: limit + 1]
    )
    return pending[:limit], len(pending) > limit


def _last_seq_for_member() -> Coalesce:
    """The last seq a participant receives: the seq of its leaving, or the conversation's last seq."""
    return Coalesce("left_seq", "conversation__last_seq")


def conversation_tails(*, user: AbstractBaseUser) -> list[dict[str, Any]]:
    """Return the user's conversations whose last seq is above its delivered watermark, with both watermarks.

    For a conversation the user has left, the last seq is that of its leaving.
    """
    return [
        {"conversationId": str(conversation_id), "lastSeq": last_seq, "deliveredSeq": delivered, "readSeq": read}
        for conversation_id, last_seq, delivered, read in Participant.objects.annotate(
            last_for_member=_last_seq_for_member()
        )
        .filter(last_for_member__gt=F("delivered_seq"))
        .filter(user_id=user.pk)
        .order_by("conversation_id")
        .values_list("conversation_id", "last_for_member", "delivered_seq", "last_read_seq")
    ]


def users_with_pending(user_ids: Iterable[int | str]) -> set[str]:
    """Return which of the given users have a conversation whose last seq is above their delivered watermark."""
    return {
        str(user_id)
        for user_id in Participant.objects.annotate(last_for_member=_last_seq_for_member())
        .filter(last_for_member__gt=F("delivered_seq"), user_id__in=set(user_ids))
        .values_list("user_id", flat=True)
        .distinct()
    }


def lagging_watermarks(user_ids: Iterable[int | str]) -> list[tuple[int, uuid.UUID, int, int]]:
    """Return (user id, conversation id, delivered seq, last seq) where a user's client lacks messages of others.

    Only messages others sent count: a client that never confirms its own
    messages is not lagging for them.
    """
    from_others_above = Message.objects.filter(
        conversation_id=OuterRef("conversation_id"),
        seq__gt=OuterRef("delivered_seq"),
        seq__lte=OuterRef("last_for_member"),
    ).exclude(sender_id=OuterRef("user_id"))
    return list(
        Participant.objects.annotate(last_for_member=_last_seq_for_member())
        .filter(last_for_member__gt=F("delivered_seq"))
        .filter(user_id__in=set(user_ids))
        .filter(Exists(from_others_above))
        .values_list("user_id", "conversation_id", "delivered_seq", "last_for_member")
    )


def direct_partner_ids(user_ids: Iterable[int | str]) -> dict[str, set[str]]:
    """Return, for each of the users, who they share a direct conversation with, in one query."""
    partners: dict[str, set[str]] = defaultdict(set)
    for user_id, partner_id in (
        Participant.objects.filter(conversation__kind=Conversation.Kind.DIRECT, user_id__in={int(u) for u in user_ids})
        .values_list("user_id", "conversation__memberships__user_id")
        .order_by()
    ):
        if partner_id != user_id:
            partners[str(user_id)].add(str(partner_id))
    return partners


def member_ids_at(*, conversation_id: uuid.UUID, seq: int) -> tuple[int, ...]:
    """Return who was a member when a conversation reached `seq` (who receives that message), in id order."""
    return tuple(
        Participant.objects.filter(conversation_id=conversation_id, joined_seq__lte=seq)
        .filter(Q(left_seq__isnull=True) | Q(left_seq__gte=seq))
        .order_by("user_id")
        .values_list("user_id", flat=True)
    )


def messages_between(*, conversation_id: uuid.UUID, after_seq: int, up_to_seq: int, limit: int) -> list[Message]:
    """Return a conversation's messages with after_seq < seq <= up_to_seq, at most `limit`, by seq."""
    return list(
        Message.objects.filter(conversation_id=conversation_id, seq__gt=after_seq, seq__lte=up_to_seq).order_by("seq")[
            :limit
        ]
    )


def messages_per_minute(*, minutes: int = 10, now: datetime | None = None) -> list[tuple[datetime, int]]:
    """Return how many messages were sent in each of the last `minutes` minutes, oldest first.

    The last entry is the current minute, so far; minutes without messages count 0.
    """
    now = now or timezone.now()
    current = now.replace(second=0, microsecond=0)
    first = current - timedelta(minutes=minutes - 1)
    counts = dict(
        Message.objects.filter(created_at__gte=first, created_at__lte=now)
        .annotate(minute=TruncMinute("created_at"))
        .order_by()
        .values("minute")
        .annotate(n=Count("pk"))
        .values_list("minute", "n")
    )
    return [(minute, counts.get(minute, 0)) for minute in (first + timedelta(minutes=i) for i in range(minutes))]
