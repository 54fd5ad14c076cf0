"""Writes of the messaging domain: conversations, messages and receipts.

Each function takes typed, keyword-only arguments (checks.py turns client
input into them, and each function runs the same checks on what it is
given), changes the database in one transaction and queues the Kafka records
that announce the change in the same transaction (the outbox), so a rollback
announces nothing and a commit is always announced. Typing, which is never
stored, is published at once. Callers (WebSocket consumers, REST views) stay
thin.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter
from collections.abc import Collection
from datetime import datetime

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, connection, transaction
from django.db.models import Count, Q, QuerySet
from django.utils import timezone

from core.errors import DomainError, NotFound, ValidationFailed
from core.parsing import iso_utc
from kafka_bridge.clients import publish_ephemeral
from kafka_bridge.outbox import outbox_enqueue_each, outbox_enqueue_many

from .checks import (
    Draft,
    check_conversation_id,
    check_message,
    check_participant_ids,
    check_received_ids,
    check_title,
    check_up_to_seq,
)
from .events import CHAT_MESSAGES, MESSAGE_STATUS_EVENTS, TYPING_EVENTS, MessageStatusEvent, TypingEvent
from .metrics import MESSAGES_SENT
from .models import Conversation, Message, MessageStatus, Participant, Receipt
from .wire import chat_message_event

User = get_user_model()

ORIGIN_CHANNEL_HEADER = "origin-channel"


### Conversations ###


def conversation_create(
    *, creator: AbstractBaseUser, participant_ids: Collection[int | str], title: str = ""
) -> tuple[Conversation, bool]:
    """Return the direct conversation with one other user (creating it), or create a group.

    The creator is always a participant. Returns (conversation, created).
    """
    others = check_participant_ids(participant_ids, creator_id=creator.pk)
    title = check_title(title)
    known = set(User.objects.filter(pk__in=others, is_active=True).values_list("pk", flat=True))
    if unknown := sorted(others - known):
        raise ValidationFailed({"participantIds": f"Unknown users: {unknown}."})

    if len(others) == 1:
        (other,) = others
        return _direct_conversation(creator.pk, other)
    with transaction.atomic():
        conversation = Conversation.objects.create(kind=Conversation.Kind.GROUP, title=title, created_by_id=creator.pk)
        Participant.objects.bulk_create(
            Participant(conversation=conversation, user_id=user_id) for user_id in sorted(others | {creator.pk})
        )
    return conversation, True


def _direct_conversation(user_a: int, user_b: int) -> tuple[Conversation, bool]:
    low, high = sorted((user_a, user_b))
    key = f"{low}:{high}"
    existing = Conversation.objects.filter(direct_key=key).first()
    if existing:
        return existing, False
    try:
        with transaction.atomic():
            conversation = Conversation.objects.create(
                kind=Conversation.Kind.DIRECT, direct_key=key, created_by_id=user_a
            )
            Participant.objects.bulk_create(
                [
                    Participant(conversation=conversation, user_id=low),
                    Participant(conversation=conversation, user_id=high),
                ]
            )
    except IntegrityError:  # the other user created it at the same moment
        return Conversation.objects.get(direct_key=key), False
    return conversation, True


### Messages ###


def message_send(
    *,
    sender: AbstractBaseUser,
    conversation_id: uuid.UUID | str,
    content: str,
    client_message_id: str,
    origin_channel: str | None = None,
) -> tuple[Message, bool]:
    """Store a message (status SENT) and queue it for chat-messages; return (message, created).

    When this returns, the message is committed. A repeat of a clientMessageId
    by the same sender returns the original and stores nothing.
    """
    conversation_uuid = check_conversation_id(conversation_id)
    draft = check_message(
        sender=sender, content=content, client_message_id=client_message_id, origin_channel=origin_channel
    )
    (outcome,) = messages_store(conversation_id=conversation_uuid, drafts=[draft])
    if isinstance(outcome, DomainError):
        raise outcome
    return outcome


SendOutcome = tuple[Message, bool] | DomainError


def messages_store(*, conversation_id: uuid.UUID, drafts: list[Draft]) -> list[SendOutcome]:
    """Store checked messages to one conversation, in order, in one transaction; return each one's outcome.

    An outcome is (message, created) or the error for that draft alone
    (NotFound for a sender who is not a participant; a repeated
    clientMessageId answers with the original). Four statements and the
    commit however many drafts: a busy conversation's senders, queued behind
    its row lock, share one commit (see sending.py).
    """
    member_ids = conversation_member_ids(conversation_id)
    outcomes: list[SendOutcome | None] = [None if d.sender_id in member_ids else NotFound() for d in drafts]
    members_drafts = [d for d, o in zip(drafts, outcomes, strict=True) if o is None]
    if not members_drafts:
        return [o for o in outcomes if o is not None]  # all refused
    if len({(d.sender_id, d.client_message_id) for d in members_drafts}) < len(members_drafts):
        stored = [_store_one(conversation_id, d) for d in members_drafts]  # repeats within the batch
    else:
        try:
            stored = [(m, True) for m in _store(conversation_id, members_drafts, member_ids)]
        except IntegrityError:
            # A repeat of a stored clientMessageId is in the batch (the rollback
            # gave the seqs back): store one by one, so that only it is answered with its original.
            stored = [_store_one(conversation_id, d) for d in members_drafts]
    if created := sum(1 for o in stored if isinstance(o, tuple) and o[1]):
        MESSAGES_SENT.inc(created)
    results = iter(stored)
    return [o if o is not None else next(results) for o in outcomes]


def _store_one(conversation_id: uuid.UUID, draft: Draft) -> SendOutcome:
    try:
        (message,) = _store(conversation_id, [draft], conversation_member_ids(conversation_id))
    except IntegrityError:
        # A repeat: the unique (sender, clientMessageId) refused the insert. Answer with the original.
        try:
            original = _original_message(draft.sender_id, draft.client_message_id, conversation_id)
        except DomainError as exc:
            return exc
        if original is None:
            raise
        return original, False
    except DomainError as exc:
        return exc
    return message, True


def _store(conversation_id: uuid.UUID, drafts: list[Draft], member_ids: tuple[int, ...]) -> list[Message]:
    with transaction.atomic():
        last = _advance_seq(conversation_id, len(drafts))
        messages = Message.objects.bulk_create(
            Message(
                conversation_id=conversation_id,
                sender_id=draft.sender_id,
                seq=last - len(drafts) + index + 1,
                content=draft.content,
                client_message_id=draft.client_message_id,
            )
            for index, draft in enumerate(drafts)
        )
        Receipt.objects.bulk_create(
            Receipt(message=message, user_id=uid, conversation_id=conversation_id, seq=message.seq)
            for message in messages
            for uid in member_ids
            if uid != message.sender_id
        )
        outbox_enqueue_each(
            topic=CHAT_MESSAGES,
            records=[
                (
                    chat_message_event(
                        message, [str(uid) for uid in member_ids if uid != draft.sender_id], draft.sender_name
                    ),
                    {ORIGIN_CHANNEL_HEADER: draft.origin_channel} if draft.origin_channel else None,
                )
                for message, draft in zip(messages, drafts, strict=True)
            ],
        )
    return messages


def _advance_seq(conversation_id: uuid.UUID, count: int) -> int:
    """Allocate the conversation's next `count` seqs in one statement; return the last.

    The row lock the UPDATE takes lasts until the commit, so it serializes the
    senders of one conversation: seq is gapless and unique, and commit order
    is seq order.
    """
    table = Conversation._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {table} SET last_seq = last_seq + %s WHERE id = %s RETURNING last_seq",
            [count, Conversation._meta.pk.get_db_prep_value(conversation_id, connection)],
        )
        row = cursor.fetchone()
    if row is None:  # deleted since its members were read
        raise NotFound()
    return row[0]


def conversation_member_ids(conversation_id: uuid.UUID) -> tuple[int, ...]:
    """Return the user ids of a conversation's participants, in id order (empty when unknown).

    Participants never change once a conversation exists, so each process
    keeps what it has read; an unknown id is not remembered.
    """
    members = _members.get(conversation_id)
    if members is None:
        members = tuple(
            Participant.objects.filter(conversation_id=conversation_id)
            .order_by("user_id")
            .values_list("user_id", flat=True)
        )
        if members:
            with _members_lock:
                if len(_members) >= MEMBERS_CACHE_SIZE:
                    _members.pop(next(iter(_members)))  # the oldest entry
                _members[conversation_id] = members
    return members


MEMBERS_CACHE_SIZE = 100_000
_members: dict[uuid.UUID, tuple[int, ...]] = {}
_members_lock = threading.Lock()


def _original_message(sender_id: int, client_message_id: str, conversation_id: uuid.UUID) -> Message | None:
    original = Message.objects.filter(sender_id=sender_id, client_message_id=client_message_id).first()
    if original is not None and original.conversation_id != conversation_id:
        raise ValidationFailed({"clientMessageId": "Already used for a message in another conversation."})
    return original


### Typing ###


def typing_event(*, user: AbstractBaseUser, conversation_id: uuid.UUID | str, is_typing: bool) -> TypingEvent:
    """Build the typing-events payload for a participant; typing is never stored."""
    conversation_uuid = check_conversation_id(conversation_id)
    member_ids = conversation_member_ids(conversation_uuid)
    if user.pk not in member_ids:
        raise NotFound()
    return TypingEvent(
        conversation_id=str(conversation_uuid),
        user_id=str(user.pk),
        is_typing=is_typing,
        timestamp=int(time.time() * 1000),
        recipient_ids=[str(uid) for uid in member_ids if uid != user.pk],
    )


def typing_send(*, user: AbstractBaseUser, conversation_id: uuid.UUID | str, is_typing: bool) -> TypingEvent:
    """Tell a conversation's other participants that the user is (no longer) typing; return what was sent.

    Published straight to Kafka, without the outbox: a typing indicator that
    is lost is simply not shown, and it expires anyway.
    """
    event = typing_event(user=user, conversation_id=conversation_id, is_typing=is_typing)
    publish_ephemeral(TYPING_EVENTS, event)
    return event


### Receipts ###


def messages_mark_received(*, user: AbstractBaseUser, message_ids: Collection[str]) -> int:
    """Record that the user's client holds these messages (DELIVERED for this user); return how many changed.

    Ids that are unknown, malformed, not addressed to the user or already
    confirmed are ignored, so confirming is idempotent. Each sender is told
    by one message-status-events record per newly delivered message.
    """
    (changed,) = receipts_mark_delivered(confirmations=[(user.pk, check_received_ids(message_ids))])
    return changed


def receipts_mark_delivered(*, confirmations: list[tuple[int, set[uuid.UUID]]]) -> list[int]:
    """Record several (user, message ids) confirmations in one transaction; return how many changed for each.

    What WebSocket clients confirm at about the same time shares one
    transaction (see sending.py), instead of a commit per socket and batch.
    """
    all_ids = set().union(*(ids for _, ids in confirmations))
    if not all_ids:
        return [0 for _ in confirmations]
    addressed = Q()
    for user_id, ids in confirmations:
        if ids:
            addressed |= Q(user_id=user_id, message_id__in=ids)
    with transaction.atomic():
        locked = {m.pk: m for m in _lock_messages(Message.objects.filter(pk__in=all_ids))}
        pending = list(
            Receipt.objects.filter(addressed, delivered_at__isnull=True)
            .order_by("message_id", "user_id")
            .values_list("pk", "message_id", "user_id")
        )
        if not pending:
            return [0 for _ in confirmations]
        now = timezone.now()
        Receipt.objects.filter(pk__in=[pk for pk, _, _ in pending]).update(delivered_at=now)
        _refresh_aggregate_status([locked[pk] for pk in dict.fromkeys(m for _, m, _ in pending)])
        outbox_enqueue_many(
            topic=MESSAGE_STATUS_EVENTS,
            payloads=[_status_event(locked[m], MessageStatus.DELIVERED, u, now) for _, m, u in pending],
        )
    changed = Counter(user_id for _, _, user_id in pending)
    return [changed[user_id] for user_id, _ in confirmations]


def conversation_mark_read(*, user: AbstractBaseUser, conversation_id: uuid.UUID | str, up_to_seq: int) -> int:
    """Move the user's read watermark forward to `up_to_seq`; return how many messages became READ.

    Everything others sent up to the watermark is READ (and so DELIVERED)
    for this user. The watermark never moves back; a seq beyond the last
    message is taken as the last message. Each sender whose messages it
    covers is told by one record carrying `upToSeq`.
    """
    up_to_seq = check_up_to_seq(up_to_seq)
    conversation_uuid = check_conversation_id(conversation_id)
    with transaction.atomic():
        participant = (
            Participant.objects.select_for_update()
            .select_related("conversation")
            .filter(conversation_id=conversation_uuid, user_id=user.pk)
            .first()
        )
        if participant is None:
            raise NotFound()
        watermark = min(up_to_seq, participant.conversation.last_seq)
        if watermark <= participant.last_read_seq:
            return 0
        participant.last_read_seq = watermark
        participant.save(update_fields=["last_read_seq"])
        messages = _lock_messages(
            Message.objects.filter(
                conversation_id=conversation_uuid,
                seq__lte=watermark,
                receipts__user_id=user.pk,
                receipts__read_at__isnull=True,
            )
        )
        if not messages:
            return 0
        now = timezone.now()
        unread = Receipt.objects.filter(user_id=user.pk, message__in=messages)
        unread.filter(delivered_at__isnull=True).update(delivered_at=now)
        unread.update(read_at=now)
        _refresh_aggregate_status(messages)
        latest_by_sender: dict[int, Message] = {}
        for message in sorted(messages, key=lambda m: m.seq):
            latest_by_sender[message.sender_id] = message
        _announce_status(list(latest_by_sender.values()), MessageStatus.READ, user, now, up_to_seq=watermark)
    return len(messages)


def _lock_messages(messages: QuerySet[Message]) -> list[Message]:
    # Receipt changes of one message are serialized by its row lock, so the
    # aggregate status computed after them sees every other recipient's change.
    # Locking in primary key order keeps concurrent confirmations from deadlocking.
    # (One receipt per message and user, so the join yields no duplicates.)
    return list(messages.select_for_update(of=("self",)).order_by("pk"))


def _refresh_aggregate_status(messages: list[Message]) -> None:
    """Recompute the sender's view (SENT, DELIVERED, READ) of messages whose receipts changed."""
    counts = (
        Receipt.objects.filter(message__in=messages)
        .values("message_id")
        .annotate(
            undelivered=Count("pk", filter=Q(delivered_at__isnull=True)),
            unread=Count("pk", filter=Q(read_at__isnull=True)),
        )
    )
    status_of: dict[uuid.UUID, str] = {}
    for row in counts:
        if row["unread"] == 0:
            status_of[row["message_id"]] = MessageStatus.READ
        elif row["undelivered"] == 0:
            status_of[row["message_id"]] = MessageStatus.DELIVERED
        else:
            status_of[row["message_id"]] = MessageStatus.SENT
    changed: dict[str, list[uuid.UUID]] = {}
    for message in messages:
        status = status_of.get(message.pk, message.status)
        if status != message.status:
            message.status = status
            changed.setdefault(status, []).append(message.pk)
    for status, ids in changed.items():
        Message.objects.filter(pk__in=ids).update(status=status)


def _announce_status(
    messages: list[Message], status: str, user: AbstractBaseUser, at: datetime, up_to_seq: int | None = None
) -> None:
    """Queue one message-status-events record per message, for its sender."""
    outbox_enqueue_many(
        topic=MESSAGE_STATUS_EVENTS,
        payloads=[_status_event(message, status, user.pk, at, up_to_seq) for message in messages],
    )


def _status_event(
    message: Message, status: str, user_id: int, at: datetime, up_to_seq: int | None = None
) -> MessageStatusEvent:
    return MessageStatusEvent(
        message_id=str(message.pk),
        conversation_id=str(message.conversation_id),
        status=str(status),
        user_id=str(user_id),
        sender_id=str(message.sender_id),
        timestamp=iso_utc(at),
        up_to_seq=up_to_seq,
    )
