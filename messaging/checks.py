"""Checks of client input to the messaging domain: raw values in, typed values out.

One `check_*` per input, shared by the WebSocket consumer and the REST views,
so both transports accept and refuse exactly the same things with the same
errors. Each raises `ValidationFailed` naming the field (or `NotFound` for an
id that cannot name anything). Services take the typed values; they run the
same checks again on what they are given, so a caller that skipped one
cannot store what a client could not.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser

from core.errors import ValidationFailed
from core.parsing import parse_uuid

from .limits import (
    CONVERSATION_PAGE_DEFAULT_LIMIT,
    CONVERSATION_PAGE_MAX_LIMIT,
    HISTORY_DEFAULT_LIMIT,
    HISTORY_MAX_LIMIT,
    MAX_CLIENT_MESSAGE_ID_CHARS,
    MAX_PARTICIPANTS,
    MAX_RECEIVED_IDS,
    MAX_TITLE_CHARS,
    MAX_UP_TO_SEQ,
)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_conversation_id(value: Any) -> uuid.UUID:
    """A conversationId field: missing or not a string is a validation error, unknown is not found."""
    if not isinstance(value, str | uuid.UUID):
        raise ValidationFailed({"conversationId": "Required: a conversation id."})
    return parse_uuid(value)


def check_content(value: Any) -> str:
    """Message content, trimmed: 1 to CHAT_MAX_CONTENT_CHARS characters."""
    if not isinstance(value, str):
        raise ValidationFailed({"content": "Must be a string."})
    content = value.strip()
    limit = settings.CHAT_MAX_CONTENT_CHARS
    if not 1 <= len(content) <= limit:
        raise ValidationFailed({"content": f"Must be 1 to {limit} characters after trimming."})
    return content


def check_client_message_id(value: Any) -> str:
    """A clientMessageId, trimmed: a non-empty string of at most MAX_CLIENT_MESSAGE_ID_CHARS."""
    if not isinstance(value, str) or not 1 <= len(value.strip()) <= MAX_CLIENT_MESSAGE_ID_CHARS:
        raise ValidationFailed(
            {"clientMessageId": f"Must be a string of 1 to {MAX_CLIENT_MESSAGE_ID_CHARS} characters."}
        )
    return value.strip()


@dataclass(frozen=True)
class Draft:
    """A checked message.send, not stored yet."""

    sender_id: int
    sender_name: str
    client_message_id: str
    content: str
    origin_channel: str | None = None


def check_message(
    *, sender: AbstractBaseUser, content: Any, client_message_id: Any, origin_channel: str | None = None
) -> Draft:
    """A message's fields from a client; raise ValidationFailed naming the bad one."""
    return Draft(
        sender_id=sender.pk,
        sender_name=sender.get_username(),
        client_message_id=check_client_message_id(client_message_id),
        content=check_content(content),
        origin_channel=origin_channel,
    )


def check_participant_ids(value: Any, *, creator_id: int) -> set[int]:
    """The other users of a new conversation: at least one, user ids (numbers or numeric strings)."""
    if isinstance(value, str | bytes) or not isinstance(value, Iterable):
        raise ValidationFailed({"participantIds": "Must be a list of user ids."})
    others: set[int] = set()
    for raw in value:
        try:
            if isinstance(raw, bool):
                raise TypeError
            others.add(int(raw))
        except (TypeError, ValueError, OverflowError):
            raise ValidationFailed({"participantIds": f"Not a user id: {raw!r}."}) from None
    others.discard(creator_id)
    if not others:
        raise ValidationFailed({"participantIds": "Name at least one other user."})
    if len(others) > MAX_PARTICIPANTS - 1:
        raise ValidationFailed({"participantIds": f"At most {MAX_PARTICIPANTS - 1} other users."})
    return others


def check_title(value: Any) -> str:
    """A group's title, trimmed: at most MAX_TITLE_CHARS characters (empty is allowed)."""
    if not isinstance(value, str):
        raise ValidationFailed({"title": "Must be a string."})
    title = value.strip()
    if len(title) > MAX_TITLE_CHARS:
        raise ValidationFailed({"title": f"At most {MAX_TITLE_CHARS} characters."})
    return title


def check_received_ids(value: Any) -> set[uuid.UUID]:
    """A message.received list; malformed ids are dropped (as unknown ones are ignored)."""
    if not isinstance(value, list) or not 1 <= len(value) <= MAX_RECEIVED_IDS:
        raise ValidationFailed({"messageIds": f"Must be a list of 1 to {MAX_RECEIVED_IDS} message ids."})
    ids: set[uuid.UUID] = set()
    for raw in value:
        if not isinstance(raw, str):
            raise ValidationFailed({"messageIds": "Message ids are strings."})
        try:
            ids.add(uuid.UUID(raw))
        except ValueError:
            continue  # malformed: as unknown, ignored
    return ids


def check_up_to_seq(value: Any, *, minimum: int = 0) -> int:
    """A watermark: an integer from `minimum` (0 for a read, 1 for a delivery) to MAX_UP_TO_SEQ."""
    if not _is_int(value) or not minimum <= value <= MAX_UP_TO_SEQ:
        raise ValidationFailed({"upToSeq": f"Must be an integer from {minimum} to {MAX_UP_TO_SEQ}."})
    return value


def check_is_typing(value: Any) -> bool:
    """A typing frame's isTyping: true or false."""
    if not isinstance(value, bool):
        raise ValidationFailed({"isTyping": "Must be true or false."})
    return value


def check_history_limit(value: int | None) -> int:
    """How many messages one history page holds: 1 to HISTORY_MAX_LIMIT, default HISTORY_DEFAULT_LIMIT."""
    if value is None:
        return HISTORY_DEFAULT_LIMIT
    if not _is_int(value) or not 1 <= value <= HISTORY_MAX_LIMIT:
        raise ValidationFailed({"limit": f"Must be 1 to {HISTORY_MAX_LIMIT}."})
    return value


def check_sync_limit(value: Any) -> int:
    """How many pending messages one `sync` batch holds: 1 to CHAT_SYNC_BATCH_MAX."""
    limit = settings.CHAT_SYNC_BATCH_MAX
    if not _is_int(value) or not 1 <= value <= limit:
        raise ValidationFailed({"limit": f"Must be 1 to {limit}."})
    return value


def check_conversation_page_limit(value: int | None) -> int:
    """How many conversations one page holds: 1 to CONVERSATION_PAGE_MAX_LIMIT (default: the _DEFAULT_ one)."""
    if value is None:
        return CONVERSATION_PAGE_DEFAULT_LIMIT
    if not _is_int(value) or not 1 <= value <= CONVERSATION_PAGE_MAX_LIMIT:
        raise ValidationFailed({"limit": f"Must be 1 to {CONVERSATION_PAGE_MAX_LIMIT}."})
    return value


def check_conversation_cursor(value: Any) -> tuple[datetime, uuid.UUID] | None:
    """A conversation list cursor (the `next` of the page before): where the next page starts; empty is the first."""
    if value is None or value == "":
        return None
    try:
        raw = base64.urlsafe_b64decode(value.encode("ascii") + b"=" * (-len(value) % 4)).decode("ascii")
        at, _, conversation_id = raw.partition("|")
        moment = datetime.fromisoformat(at)
        if moment.tzinfo is None:
            raise ValueError(at)
        return moment, uuid.UUID(conversation_id)
    except (ValueError, UnicodeError, AttributeError):
        raise ValidationFailed({"cursor": "Not a cursor of this list: use the `next` of the page before."}) from None


def conversation_cursor(activity_at: datetime, conversation_id: uuid.UUID) -> str:
    """Encode where the page after a conversation starts (what check_conversation_cursor reads)."""
    return base64.urlsafe_b64encode(f"{activity_at.isoformat()}|{conversation_id}".encode()).decode().rstrip("=")


### Conversations that change (PROTOCOL.md §7) ###


def check_user_ids(value: Any) -> set[int]:
    """The users a group admin adds: a list of 1 to MAX_PARTICIPANTS - 1 user ids (numbers or numeric strings)."""
    if isinstance(value, str | bytes) or not isinstance(value, list) or not value:
        raise ValidationFailed({"userIds": "Must be a non-empty list of user ids."})
    if len(value) > MAX_PARTICIPANTS - 1:
        raise ValidationFailed({"userIds": f"At most {MAX_PARTICIPANTS - 1} users."})
    return {check_user_id(raw, field="userIds") for raw in value}


def check_user_id(value: Any, *, field: str = "userId") -> int:
    """A user id: a number or a numeric string."""
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ValidationFailed({field: f"Not a user id: {value!r}."})
    try:
        user_id = int(value)
    except (TypeError, ValueError):
        raise ValidationFailed({field: f"Not a user id: {value!r}."}) from None
    if not 0 < user_id < 2**63:
        raise ValidationFailed({field: f"Not a user id: {value!r}."})
    return user_id


ROLES = ("admin", "member")


def check_role(value: Any) -> str:
    """A participant's role in a group: `admin` or `member`."""
    if value not in ROLES:
        raise ValidationFailed({"role": f"Must be one of {', '.join(ROLES)}."})
    return str(value)


def check_message_id(value: Any) -> uuid.UUID:
    """A messageId field: missing or not a string is a validation error, malformed is not found."""
    if not isinstance(value, str | uuid.UUID):
        raise ValidationFailed({"messageId": "Required: a message id."})
    return parse_uuid(value)
