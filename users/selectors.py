"""Reads of the users directory: who is there, the names others see, and who is online."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from django.contrib.auth import get_user_model
from django.db.models import Q

from core.errors import NotFound

from .checks import check_search, check_search_limit
from .presence import online_now, presence_fields

# What a public user is read from: the columns of PublicRow.
FIELDS = ("pk", "username", "profile__display_name", "profile__last_seen_at")
# (id, username, display name, last seen): a user without a profile has None for the last two.
PublicRow = tuple[Any, str, str | None, datetime | None]


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


def users_search(*, search: str | None, limit: int | None = None) -> list[dict[str, Any]]:
    """Return active users whose username or display name starts with `search` (any case), by username."""
    text = check_search(search)
    users = get_user_model().objects.filter(is_active=True)
    if text:
        users = users.filter(Q(username__istartswith=text) | Q(profile__display_name__istartswith=text))
    rows = users.order_by("username", "pk").values_list(*FIELDS)[: check_search_limit(limit)]
    return list(public_users(rows).values())


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
