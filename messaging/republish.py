"""Stored messages produced again to chat-messages, for consumers downstream that lost their records.

PostgreSQL holds every message and event of every conversation; Kafka keeps
chat-messages for its retention only, and a consumer that lost records (a
broker that lost its data, a consumer restored from an old state) can be
given them again from here: one conversation, or the messages created in a
time range, in (conversation, seq) order.

Each record is the one sending produced (`wire.chat_message_event`): the
same message id, seq and fields, to the members at its seq as the
membership history holds them, and the sender named as sending named it.
What a record says is what is stored now: a message edited or deleted since
carries its current content, and the edit or delete follows as its own
record. The records go straight to the broker (kafka_bridge.produce.republish
says why) marked as republished, so this service's own loops skip them:
its clients got each message live, or get it from their watermarks
(redelivery and `sync`), which this changes nothing for.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime

from django.contrib.auth import get_user_model
from django.db.models import Q

from core.errors import ValidationFailed
from core.parsing import iso_utc, parse_iso_utc
from kafka_bridge.produce.republish import republish

from .events import CHAT_MESSAGES, ChatMessage
from .models import Conversation, Message, MessageKind, Participant
from .wire import chat_message_event

User = get_user_model()

# Messages read, and their records built, per query.
BATCH_SIZE = 1000


@dataclass(frozen=True)
class Selection:
    """Which stored messages to produce again: one conversation, a time range of `created_at`, or both."""

    conversation_id: uuid.UUID | None = None
    # From `since` (included) to `until` (excluded).
    since: datetime | None = None
    until: datetime | None = None

    def describe(self) -> str:
        """Return the selection in words, for the summary line."""
        parts = []
        if self.conversation_id is not None:
            parts.append(f"conversation {self.conversation_id}")
        if self.since is not None:
            parts.append(f"created from {iso_utc(self.since)}")
        if self.until is not None:
            parts.append(f"created before {iso_utc(self.until)}")
        return ", ".join(parts)


@dataclass
class Summary:
    """What a republish produced (or, in a dry run, would produce)."""

    records: int = 0
    conversations: set[uuid.UUID] = field(default_factory=set)
    first_created: datetime | None = None
    last_created: datetime | None = None


def check_selection(*, conversation_id: str | None, since: str | None, until: str | None) -> Selection:
    """Return the selection an operator gave; ValidationFailed when it is none, or not one."""
    if conversation_id is None and since is None and until is None:
        raise ValidationFailed({"selection": "Name a conversation, a time range (since, until), or both."})
    errors: dict[str, str] = {}
    conversation_uuid = None
    if conversation_id is not None:
        try:
            conversation_uuid = uuid.UUID(conversation_id)
        except ValueError:
            errors["conversation"] = f"{conversation_id!r} is not a conversation id."
    times: dict[str, datetime | None] = {}
    for name, value in (("since", since), ("until", until)):
        times[name] = parse_iso_utc(value) if value is not None else None
        if value is not None and times[name] is None:
            errors[name] = f"{value!r} is not an ISO 8601 time (e.g. 2025-11-11T22:30:00Z)."
    if not errors and times["since"] and times["until"] and times["since"] >= times["until"]:
        errors["until"] = "The range is empty: until must be after since."
    if errors:
        raise ValidationFailed(errors)
    if conversation_uuid is not None and not Conversation.objects.filter(pk=conversation_uuid).exists():
        raise ValidationFailed({"conversation": f"No conversation {conversation_uuid}."})
    return Selection(conversation_id=conversation_uuid, since=times["since"], until=times["until"])


def messages_republish(*, selection: Selection, dry_run: bool = False) -> Summary:
    """Produce the selected stored messages again to chat-messages (or only count them); return the summary.

    Raise kafka_bridge's RepublishFailed when the broker did not take every record.
    """
    summary = Summary()
    records = _records(selection, summary)
    if dry_run:
        for _record in records:
            pass
    else:
        republish(CHAT_MESSAGES, records)
    return summary


def _records(selection: Selection, summary: Summary) -> Iterator[ChatMessage]:
    for batch in _batches(selection):
        summary.records += len(batch)
        summary.conversations.update(m.conversation_id for m in batch)
        # Batches go by conversation, not by time.
        first, last = min(m.created_at for m in batch), max(m.created_at for m in batch)
        summary.first_created = first if summary.first_created is None else min(summary.first_created, first)
        summary.last_created = last if summary.last_created is None else max(summary.last_created, last)
        yield from chat_message_records(batch)


def _batches(selection: Selection) -> Iterator[list[Message]]:
    """Yield the selected messages in (conversation, seq) order, a batch per query (keyset pagination)."""
    messages = Message.objects.all()
    if selection.conversation_id is not None:
        messages = messages.filter(conversation_id=selection.conversation_id)
    if selection.since is not None:
        messages = messages.filter(created_at__gte=selection.since)
    if selection.until is not None:
        messages = messages.filter(created_at__lt=selection.until)
    messages = messages.order_by("conversation_id", "seq")
    after: tuple[uuid.UUID, int] | None = None
    while True:
        page = messages
        if after is not None:
            conversation_id, seq = after
            page = page.filter(Q(conversation_id__gt=conversation_id) | Q(conversation_id=conversation_id, seq__gt=seq))
        batch = list(page[:BATCH_SIZE])
        if not batch:
            return
        yield batch
        after = (batch[-1].conversation_id, batch[-1].seq)


def chat_message_records(messages: list[Message]) -> list[ChatMessage]:
    """Return the chat-messages record of each stored message as sending it produced it.

    Recipients: the members at the message's seq (joined at or before it,
    not left before it), in id order, less the sender. The sender's name:
    the username for a text message (services.messages_store), the display
    name, else the username, for an event (changes.ChangeNames.name). Two
    queries for the whole batch.
    """
    ranges: dict[uuid.UUID, list[tuple[int, int, int | None]]] = defaultdict(list)
    for conversation_id, user_id, joined_seq, left_seq in (
        Participant.objects.filter(conversation_id__in={m.conversation_id for m in messages})
        .order_by("user_id")
        .values_list("conversation_id", "user_id", "joined_seq", "left_seq")
    ):
        ranges[conversation_id].append((user_id, joined_seq, left_seq))
    names = {
        pk: (username, display_name)
        for pk, username, display_name in User.objects.filter(pk__in={m.sender_id for m in messages}).values_list(
            "pk", "username", "profile__display_name"
        )
    }
    records = []
    for message in messages:
        seq = message.seq
        recipients = [
            str(user_id)
            for user_id, joined_seq, left_seq in ranges[message.conversation_id]
            if joined_seq <= seq and (left_seq is None or left_seq >= seq) and user_id != message.sender_id
        ]
        username, display_name = names[message.sender_id]
        name = username if message.kind == MessageKind.TEXT else (display_name or username)
        records.append(chat_message_event(message, recipients, name))
    return records
