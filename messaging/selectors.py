"""Reads of the messaging domain, each scoped to what one user may see."""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.db.models import Count, Exists, IntegerField, OuterRef, Q, QuerySet, Subquery
from django.db.models.functions import Coalesce, TruncMinute
from django.utils import timezone

from core.errors import NotFound
from core.parsing import parse_uuid
from users.selectors import public_user

from .checks import (
    check_conversation_cursor,
    check_conversation_page_limit,
    check_history_limit,
    conversation_cursor,
)
from .models import Conversation, Message, Participant, Receipt
from .wire import message_wire


def conversations_for_user(user: AbstractBaseUser) -> QuerySet[Conversation]:
    """Return the user's conversations, annotated with the user's unread count."""
    unread = (
        Receipt.objects.filter(user_id=user.pk, conversation=OuterRef("pk"), read_at__isnull=True)
        .order_by()
        .values("conversation")
        .annotate(n=Count("pk"))
        .values("n")
    )
    return (
        Conversation.objects.filter(memberships__user_id=user.pk)
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

    Each participant carries `lastReadSeq` (an addition to the contract), so
    that a group's members can see who has read what.
    """
    ids = [c.pk for c in conversations]
    members: dict[Any, list[tuple[str, int]]] = defaultdict(list)
    people: dict[str, dict[str, str]] = {}
    for conversation_id, user_id, last_read_seq, username, display_name in (
        Participant.objects.filter(conversation_id__in=ids)
        .order_by("user_id")
        .values_list("conversation_id", "user_id", "last_read_seq", "user__username", "user__profile__display_name")
    ):
        members[conversation_id].append((str(user_id), last_read_seq))
        people[str(user_id)] = public_user(user_id, username, display_name)
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
            "participants": [{**people[user_id], "lastReadSeq": seq} for user_id, seq in members[c.pk]],
            "lastSeq": c.last_seq,
            "lastMessage": message_wire(last_messages[c.pk]) if c.pk in last_messages else None,
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
    back); otherwise the oldest `limit` messages after `after_seq`.
    """
    conversation = conversation_get_for_user(user=user, conversation_id=conversation_id)
    limit = check_history_limit(limit)
    messages = Message.objects.filter(conversation=conversation)
    if after_seq is not None:
        messages = messages.filter(seq__gt=after_seq)
    if before_seq is not None:
        messages = messages.filter(seq__lt=before_seq)
    if before_seq is not None and after_seq is None:
        return sorted(messages.order_by("-seq")[:limit], key=lambda m: m.seq)
    return list(messages.order_by("seq")[:limit])


def messages_pending_for_user(*, user: AbstractBaseUser, limit: int) -> tuple[list[Message], bool]:
    """Return up to `limit` messages addressed to the user that its client has not confirmed, and whether more wait.

    Oldest first within each conversation (the order of the partial index
    on undelivered receipts, so a backlog of any size is read in one scan).
    """
    pending = list(
        Receipt.objects.filter(user_id=user.pk, delivered_at__isnull=True)
        .order_by("conversation_id", "seq")
        .values_list("message_id", flat=True)[: limit + 1]
    )
    more = len(pending) > limit
    messages = Message.objects.in_bulk(pending[:limit])
    return [messages[message_id] for message_id in pending[:limit] if message_id in messages], more


def users_with_pending(user_ids: Iterable[int | str]) -> set[str]:
    """Return which of the given users have messages addressed to them that their client has not confirmed."""
    pending = Receipt.objects.filter(user_id=OuterRef("pk"), delivered_at__isnull=True)
    users = get_user_model().objects.filter(pk__in=set(user_ids)).filter(Exists(pending))
    return {str(pk) for pk in users.values_list("pk", flat=True)}


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
