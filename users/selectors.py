"""Reads of the users directory: who is there, and the names others see."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.db.models import Q

from core.errors import NotFound

from .checks import check_search, check_search_limit

FIELDS = ("pk", "username", "profile__display_name")


def _wire(row: tuple[Any, str, str | None]) -> dict[str, str]:
    pk, username, display_name = row
    return public_user(pk, username, display_name)


def public_user(user_id: Any, username: str, display_name: str | None) -> dict[str, str]:
    """The public fields of a user, as every answer shows them (`{id, username, displayName}`)."""
    return {"id": str(user_id), "username": username, "displayName": display_name or ""}


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
