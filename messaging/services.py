"""Writes of the messaging domain: conversations, messages and watermarks.

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
from collections import defaultdict
from collections.abc import Callable, Collection
from dataclasses import dataclass, replace

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, connection, transaction
from django.db.models import Q
from django.utils import timezone

from core.errors import DomainError, NotFound, ValidationFailed
from core.parsing import iso_utc
from kafka_bridge.produce.clients import publish_ephemeral
from kafka_bridge.produce.outbox import outbox_enqueue_each, outbox_enqueue_many

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
from .models import Conversation, Message, Participant
from .watermarks import DELIVERED, READ, Marks, advanced, contiguous_run, floors
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
        # The creator starts as the group's admin.
        Participant.objects.bulk_create(
            Participant(
                conversation=conversation,
                user_id=user_id,
                role=Participant.Role.ADMIN if user_id == creator.pk else Participant.Role.MEMBER,
            )
            for user_id in sorted(others | {creator.pk})
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
    (NotFound for a sender who is not a member; a repeated clientMessageId
    answers with the original). Three statements and the commit however
    many drafts: a busy conversation's senders, queued behind its row lock,
    share one commit (see sending.py).
    """
    for _attempt in range(MEMBERSHIP_RETRIES):
        try:
            return _store_drafts(conversation_id, drafts)
        except MembershipChanged:
            continue  # the cache now holds the members under the lock: refuse who left, store the rest
    return _store_drafts(conversation_id, drafts)


# How often a batch is tried again after the membership changed under it (each change is a rare admin action).
MEMBERSHIP_RETRIES = 3


class MembershipChanged(Exception):
    """A sender of a batch stopped being a member before the batch took the row lock; nothing was stored."""


def _store_drafts(conversation_id: uuid.UUID, drafts: list[Draft]) -> list[SendOutcome]:
    members = _members_known(conversation_id)
    if any(d.sender_id not in members.ids for d in drafts):
        members = _members_read(conversation_id)  # added in another process since this one read them?
    outcomes: list[SendOutcome | None] = [None if d.sender_id in members.ids else NotFound() for d in drafts]
    members_drafts = [d for d, o in zip(drafts, outcomes, strict=True) if o is None]
    if not members_drafts:
        return [o for o in outcomes if o is not None]  # all refused
    if len({(d.sender_id, d.client_message_id) for d in members_drafts}) < len(members_drafts):
        stored = [_store_one(conversation_id, d) for d in members_drafts]  # repeats within the batch
    else:
        try:
            stored = [(m, True) for m in _store(conversation_id, members_drafts, members)]
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
        (message,) = _store(conversation_id, [draft], _members_known(conversation_id))
    except MembershipChanged:
        return NotFound()  # no longer a member
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


def _store(conversation_id: uuid.UUID, drafts: list[Draft], members: Members) -> list[Message]:
    with transaction.atomic():
        last, members_seq = _advance_seq(conversation_id, len(drafts))
        if members_seq != members.seq:
            # The membership changed since this process read it: read it again, under the row lock, so exactly.
            members = _members_read(conversation_id)
            if any(d.sender_id not in members.ids for d in drafts):
                raise MembershipChanged()
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
        outbox_enqueue_each(
            topic=CHAT_MESSAGES,
            records=[
                (
                    chat_message_event(
                        message, [str(uid) for uid in members.ids if uid != draft.sender_id], draft.sender_name
                    ),
                    {ORIGIN_CHANNEL_HEADER: draft.origin_channel} if draft.origin_channel else None,
                )
                for message, draft in zip(messages, drafts, strict=True)
            ],
        )
    return messages


def _advance_seq(conversation_id: uuid.UUID, count: int) -> tuple[int, int]:
    """Allocate the conversation's next `count` seqs in one statement; return the last and its members_seq.

    The row lock the UPDATE takes lasts until the commit, so it serializes the
    senders of one conversation (and its membership changes): seq is gapless
    and unique, and commit order is seq order.
    """
    table = Conversation._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {table} SET last_seq = last_seq + %s WHERE id = %s RETURNING last_seq, members_seq",
            [count, Conversation._meta.pk.get_db_prep_value(conversation_id, connection)],
        )
        row = cursor.fetchone()
    if row is None:  # deleted since its members were read
        raise NotFound()
    return row[0], row[1]


@dataclass(frozen=True, slots=True)
class Members:
    """A conversation's current members (user ids in id order) as of its `members_seq`."""

    seq: int
    ids: tuple[int, ...]


def conversation_member_ids(conversation_id: uuid.UUID) -> tuple[int, ...]:
    """Return the user ids of a conversation's current members, in id order (empty when unknown).

    Read fresh: for callers that do not hold the conversation's row lock
    (typing, records from other services), which are not on the send path.
    """
    return _members_read(conversation_id).ids


def _members_known(conversation_id: uuid.UUID) -> Members:
    """Return the members this process keeps for the conversation, reading them when it keeps none.

    Each process keeps what it read, stamped with the conversation's
    `members_seq`; a send compares the stamp with the `members_seq` its
    UPDATE returns under the row lock and reads the members again when they
    differ, so a membership change made by any process is seen by the next
    send of every process, and sends cost no extra query otherwise.
    """
    members = _members.get(conversation_id)
    return members if members is not None else _members_read(conversation_id)


def _members_read(conversation_id: uuid.UUID) -> Members:
    """Read a conversation's members and keep them; an unknown conversation is not remembered."""
    # members_seq first: a change committed between the two reads leaves an older stamp, so it is read again.
    members_seq = Conversation.objects.filter(pk=conversation_id).values_list("members_seq", flat=True).first()
    if members_seq is None:
        return Members(seq=-1, ids=())
    members = Members(
        seq=members_seq,
        ids=tuple(
            Participant.objects.filter(conversation_id=conversation_id, left_seq__isnull=True)
            .order_by("user_id")
            .values_list("user_id", flat=True)
        ),
    )
    with _members_lock:
        if conversation_id not in _members and len(_members) >= MEMBERS_CACHE_SIZE:
            _members.pop(next(iter(_members)))  # the oldest entry
        _members[conversation_id] = members
    return members


MEMBERS_CACHE_SIZE = 100_000
_members: dict[uuid.UUID, Members] = {}
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
    member_ids = conversation_member_ids(conversation_uuid)  # fresh: typing takes no row lock
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


### Watermarks ###


@dataclass(frozen=True, slots=True)
class Confirmation:
    """A participant's client holds (`delivered`) or the participant has read (`read`) a conversation up to a seq."""

    user_id: int
    conversation_id: uuid.UUID
    delivered: int = 0
    read: int = 0


@dataclass(frozen=True, slots=True)
class ReadMove:
    """A participant's read watermark moved up to `read_seq` (in a transaction not committed yet)."""

    user_id: int
    conversation_id: uuid.UUID
    read_seq: int


ReadListener = Callable[[list[ReadMove]], object]
_read_listeners: list[ReadListener] = []


def on_read_moved(listener: ReadListener) -> ReadListener:
    """Have `listener` called with each batch's read moves, inside the batch's transaction.

    How apps above messaging follow what a user has read without messaging
    knowing them (notifications marks read the NEW_MESSAGE notifications a
    move covers). A listener runs a fixed number of statements per batch,
    never one per move, and its writes commit or roll back with the
    watermarks. Registered once per process, from an app's `ready()`.
    """
    if listener not in _read_listeners:
        _read_listeners.append(listener)
    return listener


def conversation_mark_received(*, user: AbstractBaseUser, conversation_id: uuid.UUID | str, up_to_seq: int) -> bool:
    """Move the user's delivered watermark up to `up_to_seq` (at most the last seq); return whether it moved.

    The client says it holds every message of the conversation up to there.
    NotFound when the user is not a participant.
    """
    confirmation = Confirmation(
        user_id=user.pk,
        conversation_id=check_conversation_id(conversation_id),
        delivered=check_up_to_seq(up_to_seq, minimum=1),
    )
    (outcome,) = watermarks_advance(confirmations=[confirmation])
    return _moved_or_not_found(outcome)


def conversation_mark_read(*, user: AbstractBaseUser, conversation_id: uuid.UUID | str, up_to_seq: int) -> bool:
    """Move the user's read watermark (and so its delivered one) up to `up_to_seq`; return whether it moved.

    Everything others sent up to there is READ for the user. NotFound when
    the user is not a participant.
    """
    confirmation = Confirmation(
        user_id=user.pk, conversation_id=check_conversation_id(conversation_id), read=check_up_to_seq(up_to_seq)
    )
    (outcome,) = watermarks_advance(confirmations=[confirmation])
    return _moved_or_not_found(outcome)


def messages_mark_received(*, user: AbstractBaseUser, message_ids: Collection[str]) -> bool:
    """Take a v1 confirmation by message ids as watermark moves; return whether any moved.

    Each conversation's watermark moves over the longest contiguous run the
    ids cover (see `confirmations_from_ids`); unknown ids, and ids of
    messages not addressed to the user, are ignored.
    """
    confirmations = confirmations_from_ids(user_id=user.pk, message_ids=check_received_ids(message_ids))
    return any(outcome is True for outcome in watermarks_advance(confirmations=confirmations))


def confirmations_from_ids(*, user_id: int, message_ids: set[uuid.UUID]) -> list[Confirmation]:
    """Turn message ids a client holds into delivered watermarks, one per conversation of the user.

    A watermark moves over messages the ids name and the user's own
    messages, and stops at the first message the client did not name: a
    message above that gap stays unconfirmed and comes again by `sync`.
    """
    named = (
        Message.objects.filter(pk__in=message_ids, conversation__memberships__user_id=user_id)
        .values_list("conversation_id", "seq", "conversation__memberships__delivered_seq")
        .order_by()
    )
    held: dict[uuid.UUID, set[int]] = {}
    start: dict[uuid.UUID, int] = {}
    for conversation_id, seq, delivered_seq in named:
        start[conversation_id] = delivered_seq
        if seq > delivered_seq:
            held.setdefault(conversation_id, set()).add(seq)
    confirmations = []
    for conversation_id, seqs in held.items():
        above = (
            Message.objects.filter(conversation_id=conversation_id, seq__gt=start[conversation_id])
            .order_by("seq")
            .values_list("seq", "sender_id")[: max(seqs) - start[conversation_id] + CONFIRM_OWN_TAIL]
        )
        end = contiguous_run(start[conversation_id], seqs, above, user_id)
        if end > start[conversation_id]:
            confirmations.append(Confirmation(user_id=user_id, conversation_id=conversation_id, delivered=end))
    return confirmations


# How many of the user's own messages right after the last confirmed one a v1 confirmation also covers.
CONFIRM_OWN_TAIL = 100


def _moved_or_not_found(outcome: bool | None) -> bool:
    if outcome is None:
        raise NotFound()
    return outcome


def watermarks_advance(*, confirmations: list[Confirmation]) -> list[bool | None]:
    """Record several confirmations in one transaction; return, for each, whether it moved a watermark.

    None for a confirmation of a user who is not a participant (nothing is
    changed for it). Watermarks only move forward, never past the last seq,
    and read never passes delivered. Every move is announced on
    message-status-events, one record per move and sender, never per
    message: per participant (in conversations of up to
    CHAT_RECEIPT_DETAIL_MAX_MEMBERS) and, when the smallest watermark of a
    sender's fellow participants moves, as an aggregate. Read moves then go
    to the listeners of `on_read_moved`, in the same transaction. The
    statements are the same few for any number of confirmations.
    """
    wanted: dict[tuple[int, uuid.UUID], Confirmation] = {}
    for c in confirmations:
        known = wanted.get((c.user_id, c.conversation_id))
        if known is not None:
            c = replace(c, delivered=max(c.delivered, known.delivered), read=max(c.read, known.read))
        wanted[(c.user_id, c.conversation_id)] = c
    conversation_ids = sorted({conversation_id for _, conversation_id in wanted})
    before: dict[uuid.UUID, dict[int, Marks]] = defaultdict(dict)
    last_seqs: dict[uuid.UUID, int] = {}
    moved: dict[tuple[int, uuid.UUID], bool] = {}
    reads: list[ReadMove] = []
    with transaction.atomic():
        _serialize_watermarks(conversation_ids)
        rows = Participant.objects.filter(conversation_id__in=conversation_ids).values_list(
            "pk", "conversation_id", "user_id", "delivered_seq", "last_read_seq", "conversation__last_seq", "left_seq"
        )
        pks: dict[tuple[int, uuid.UUID], int] = {}
        # Members who left: their watermarks move up to their leaving (so that sync stops sending
        # them its event), but they no longer count for statuses, so their moves are not announced.
        departed: dict[tuple[int, uuid.UUID], tuple[Marks, int]] = {}
        for pk, conversation_id, user_id, delivered_seq, read_seq, last_seq, left_seq in rows:
            last_seqs[conversation_id] = last_seq
            pks[(user_id, conversation_id)] = pk
            if left_seq is None:
                before[conversation_id][user_id] = Marks(delivered=delivered_seq, read=read_seq)
            else:
                departed[(user_id, conversation_id)] = (Marks(delivered=delivered_seq, read=read_seq), left_seq)
        after = {conversation_id: dict(marks) for conversation_id, marks in before.items()}
        rows_after: list[tuple[int, Marks]] = []
        for key, c in wanted.items():
            if key not in pks:
                continue
            if key in departed:
                marks, left_seq = departed[key]
                new = advanced(marks, delivered=c.delivered, read=c.read, last_seq=left_seq)
                if new != marks:
                    rows_after.append((pks[key], new))
            else:
                marks = before[c.conversation_id][c.user_id]
                new = advanced(marks, delivered=c.delivered, read=c.read, last_seq=last_seqs[c.conversation_id])
                after[c.conversation_id][c.user_id] = new
            moved[key] = new != marks
            if new.read > marks.read:
                reads.append(ReadMove(user_id=c.user_id, conversation_id=c.conversation_id, read_seq=new.read))
        changes = [key for key, did in moved.items() if did and key not in departed]
        rows_after += [(pks[(u, c)], after[c][u]) for u, c in changes]
        if rows_after:
            Participant.objects.bulk_update(
                [Participant(pk=pk, delivered_seq=m.delivered, last_read_seq=m.read) for pk, m in rows_after],
                ["delivered_seq", "last_read_seq"],
            )
        if changes:
            _announce_moves(changes, before, after)
        if reads:
            for listener in _read_listeners:
                listener(reads)
    return [moved.get((c.user_id, c.conversation_id)) for c in confirmations]


def _serialize_watermarks(conversation_ids: list[uuid.UUID]) -> None:
    """Take each conversation's watermark lock until the commit (PostgreSQL; SQLite has one writer anyway).

    An aggregate depends on every participant's watermark, so two
    transactions moving two members of one group must not both read the
    other's old value. An advisory lock, not a row lock: sends, which
    update the conversation row, never wait for confirmations.
    """
    if connection.vendor != "postgresql" or not conversation_ids:
        return
    keys = sorted({int.from_bytes(c.bytes[:8], "big", signed=True) for c in conversation_ids})
    with connection.cursor() as cursor:
        # unnest yields the keys in the array's (sorted) order: concurrent batches never deadlock.
        cursor.execute("SELECT pg_advisory_xact_lock(k) FROM unnest(%s::bigint[]) AS k", [keys])


def _announce_moves(
    changes: list[tuple[int, uuid.UUID]],
    before: dict[uuid.UUID, dict[int, Marks]],
    after: dict[uuid.UUID, dict[int, Marks]],
) -> None:
    """Queue the message-status-events records of watermark moves: per participant, then aggregates."""
    # Each record names the sender's latest message its range covers: read the messages of the ranges at once.
    ranges: dict[uuid.UUID, tuple[int, int]] = {}
    for user_id, conversation_id in changes:
        old, new = before[conversation_id][user_id], after[conversation_id][user_id]
        low, high = ranges.get(conversation_id, (old.read, new.delivered))
        ranges[conversation_id] = (min(low, old.read), max(high, new.delivered))
    within = Q()
    for conversation_id, (low, high) in ranges.items():
        within |= Q(conversation_id=conversation_id, seq__gt=low, seq__lte=high)
    by_sender: dict[tuple[uuid.UUID, int], list[tuple[int, uuid.UUID]]] = defaultdict(list)
    for conversation_id, seq, sender_id, message_id in (
        Message.objects.filter(within).order_by("seq").values_list("conversation_id", "seq", "sender_id", "pk")
    ):
        by_sender[(conversation_id, sender_id)].append((seq, message_id))

    def latest(conversation_id: uuid.UUID, sender_id: int, low: int, high: int) -> tuple[int, uuid.UUID] | None:
        # The sender's last message with low < seq <= high.
        found = None
        for seq, message_id in by_sender.get((conversation_id, sender_id), ()):
            if seq > high:
                break
            if seq > low:
                found = (seq, message_id)
        return found

    now = iso_utc(timezone.now())
    records: list[MessageStatusEvent] = []
    senders_of: dict[uuid.UUID, set[int]] = defaultdict(set)
    for conversation_id, sender_id in by_sender:
        senders_of[conversation_id].add(sender_id)
    for user_id, conversation_id in changes:
        if len(after[conversation_id]) > settings.CHAT_RECEIPT_DETAIL_MAX_MEMBERS:
            continue  # only aggregates in big conversations
        old, new = before[conversation_id][user_id], after[conversation_id][user_id]
        for status in (READ, DELIVERED):
            if new.of(status) <= old.of(status) or (status == DELIVERED and new.delivered <= new.read):
                continue  # no move, or a DELIVERED that the READ announced covers
            for sender_id in sorted(senders_of[conversation_id] - {user_id}):
                if covered := latest(conversation_id, sender_id, old.of(status), new.of(status)):
                    records.append(
                        _status_event(conversation_id, covered, sender_id, status, str(user_id), new.of(status), now)
                    )
    for conversation_id in dict.fromkeys(c for _, c in changes):
        for status in (READ, DELIVERED):
            old_floor, new_floor = floors(before[conversation_id], status), floors(after[conversation_id], status)
            if new_floor == old_floor:
                continue
            for sender_id in sorted(senders_of[conversation_id]):
                low, high = old_floor.of(sender_id), new_floor.of(sender_id)
                if high > low and (covered := latest(conversation_id, sender_id, low, high)):
                    records.append(_status_event(conversation_id, covered, sender_id, status, None, high, now))
    if records:
        outbox_enqueue_many(topic=MESSAGE_STATUS_EVENTS, payloads=records)


def _status_event(
    conversation_id: uuid.UUID,
    covered: tuple[int, uuid.UUID],
    sender_id: int,
    status: str,
    user_id: str | None,
    up_to_seq: int,
    timestamp: str,
) -> MessageStatusEvent:
    return MessageStatusEvent(
        message_id=str(covered[1]),
        conversation_id=str(conversation_id),
        status=status,
        user_id=user_id,
        sender_id=str(sender_id),
        timestamp=timestamp,
        up_to_seq=up_to_seq,
        aggregate=True if user_id is None else None,
    )
