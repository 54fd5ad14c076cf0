"""Reads of the users directory: who is there, and the names others see."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.contrib.auth import get_user_model
from django.db.models import Q

from core.errors import NotFound

from .checks import check_search, check_search_limit

FIELDS = ("pk", "username", "profile__display_name")


def _wire(row: tuple[Any, str, str | None]) -> dict[str, str]:
    pk, username, display_name = row
    return {"id": str(pk), "username": username, "displayName": display_name or ""}


def users_search(*, search: str | None, limit: int | None = None) -> list[dict[str, str]]:
    """Return active users whose username or display name starts with `search` (any case), by username."""
    text = check_search(search)
    users = get_user_model().objects.filter(is_active=True)
    if text:
        users = users.filter(Q(username__istartswith=text) | Q(profile__display_name__istartswith=text))
    return [_wire(row) for row in users.order_by("username", "pk").values_list(*FIELDS)[: check_search_limit(limit)]]


def user_get_active(*, user_id: Any) -> dict[str, str]:
    """Return one active user's public fields; NotFound for an unknown, inactive or malformed id."""
    try:
        pk = int(str(user_id))
    except ValueError:
        raise NotFound() from None
    row = get_user_model().objects.filter(pk=pk, is_active=True).values_list(*FIELDS).first()
    if row is None:
        raise NotFound()
    return _wire(row)


def users_public(user_ids: Iterable[Any]) -> dict[str, dict[str, str]]:
    """Return the public fields of the given users (active or not: they stay in old conversations), by id."""
    rows = get_user_model().objects.filter(pk__in=set(user_ids)).values_list(*FIELDS)
    return {str(row[0]): _wire(row) for row in rows}
