"""Reads of the users directory: who is there, the names others see, and who is online."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from django.contrib.auth import get_user_model
from django.db import connection
from django.db.models import Case, Q, QuerySet, Value, When
from django.db.models.expressions import RawSQL

from core.errors import NotFound

from .checks import check_search, check_search_limit
from .limits import MIN_SUBSTRING_SEARCH_CHARS
from .models import Profile
from .presence import online_now, presence_fields

# What a public user is read from: the columns of PublicRow.
FIELDS = ("pk", "username", "profile__display_name", "profile__last_seen_at")
# (id, username, display name, last seen): a user without a profile has None for the last two.
PublicRow = tuple[Any, str, str | None, datetime | None]
# Where a word starts inside a username ("ann-xnu9") or a display name ("Ann Baker").
WORD_SEPARATORS = (" ", "-", "_", ".")


def public_users(rows: Iterable[PublicRow]) -> dict[str, dict[str, Any]]:
    """Return the public fields of users, by id, as every answer shows them, with one look at Redis for all.

    `{id, username, displayName, online, lastSeenAt}`.
    """
    rows = list(rows)
    online = online_now(row[0] for row in rows)
    return {
        str(pk): {
            "id": str(pk),
            "username": username,
            "displayName": display_name or "",
            **presence_fields(str(pk) in online, last_seen_at),
        }
        for pk, username, display_name, last_seen_at in rows
    }


def _word_start(field: str, text: str) -> Q:
    """The field starts with `text`, or a word in it does (any case)."""
    q = Q(**{f"{field}__istartswith": text})
    for separator in WORD_SEPARATORS:
        q |= Q(**{f"{field}__icontains": separator + text})
    return q


def _fts_phrase(text: str) -> str:
    """`text` as one FTS5 phrase: with the trigram tokenizer, a substring of any case."""
    return '"' + text.replace('"', '""') + '"'


def _matching_ids(text: str) -> QuerySet[Any] | RawSQL:
    """The ids of users whose username or display name holds `text`, each side read through its own index.

    One query per table, joined by UNION: an OR across the two tables of a join could use neither index.
    """
    substring = len(text) >= MIN_SUBSTRING_SEARCH_CHARS
    if substring and connection.vendor == "sqlite":
        # The FTS5 trigram table of migration 0004, kept by triggers.
        return RawSQL("SELECT rowid FROM users_search WHERE users_search MATCH %s", (_fts_phrase(text),))
    if substring:
        by_username = Q(username__icontains=text)
        by_display_name = Q(display_name__icontains=text)
    else:
        by_username, by_display_name = _word_start("username", text), _word_start("display_name", text)
    usernames = get_user_model().objects.filter(by_username).values("pk")
    return usernames.union(Profile.objects.filter(by_display_name).values("user_id"))


def users_search(*, search: str | None, limit: int | None = None) -> list[dict[str, Any]]:
    """Return active users with `search` in their username or display name (any case), best matches first.

    A name that is the text comes first, then names that start with it, then names with a word that does
    ("Baker" in "Ann Baker"), then the rest, each by username. A text shorter than MIN_SUBSTRING_SEARCH_CHARS
    matches only the start of a name or of a word in it.
    """
    text = check_search(search)
    limit = check_search_limit(limit)
    users = get_user_model().objects.filter(is_active=True)
    if not text:
        return list(public_users(users.order_by("username", "pk").values_list(*FIELDS)[:limit]).values())
    rank = Case(
        When(Q(username__iexact=text) | Q(profile__display_name__iexact=text), then=Value(0)),
        When(Q(username__istartswith=text) | Q(profile__display_name__istartswith=text), then=Value(1)),
        When(_word_start("username", text) | _word_start("profile__display_name", text), then=Value(2)),
        default=Value(3),
    )
    found = users.filter(pk__in=_matching_ids(text)).annotate(rank=rank).order_by("rank", "username", "pk")
    return list(public_users(found.values_list(*FIELDS)[:limit]).values())


def user_get_active(*, user_id: Any) -> dict[str, Any]:
    """Return one active user's public fields; NotFound for an unknown, inactive or malformed id."""
    try:
        pk = int(str(user_id))
    except ValueError:
        raise NotFound() from None
    row = get_user_model().objects.filter(pk=pk, is_active=True).values_list(*FIELDS).first()
    if row is None:
        raise NotFound()
    return public_users([row])[str(pk)]
