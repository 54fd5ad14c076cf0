"""What `sync` sends, asked for by many sockets at once.

After a deploy every client reconnects and sends `sync` within seconds, and
most of them have nothing pending. Whether a user has anything is asked with
one query for all the sockets asking at the same moment; only users who do
have messages pending read them with a query of their own.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import AbstractBaseUser

from core.batching import Coalescer, PerLoop
from core.db import db

from . import selectors


async def _users_with_pending(user_ids: list[str]) -> set[str]:
    return await db(selectors.users_with_pending)(user_ids)


_pending_checks: PerLoop[Coalescer[str, set[str]]] = PerLoop(lambda: Coalescer(_users_with_pending, "pending checks"))

Pending = tuple[list[dict[str, Any]], bool, list[dict[str, Any]]]


def _pending(user: AbstractBaseUser, limit: int) -> Pending:
    messages, more = selectors.messages_pending_for_user(user=user, limit=limit)
    return selectors.messages_wire(messages), more, selectors.conversation_tails(user=user)


async def messages_pending(user: AbstractBaseUser, limit: int) -> Pending:
    """Return up to `limit` messages above the user's delivered watermarks (as Message objects),
    whether more wait, and the user's conversations whose last seq is above its delivered watermark."""
    if str(user.pk) not in await _pending_checks.get().submit(str(user.pk)):
        return [], False, []
    return await db(_pending)(user, limit)
