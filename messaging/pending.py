"""What `sync` sends, asked for by many sockets at once.

After a deploy every client reconnects and sends `sync` within seconds, and
most of them have nothing pending. Whether a user has anything is asked with
one query for all the sockets asking at the same moment; only users who do
have messages pending read them with a query of their own.
"""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser

from core.batching import Coalescer, PerLoop
from core.db import db

from . import selectors
from .models import Message


async def _users_with_pending(user_ids: list[str]) -> set[str]:
    return await db(selectors.users_with_pending)(user_ids)


_pending_checks: PerLoop[Coalescer[str, set[str]]] = PerLoop(lambda: Coalescer(_users_with_pending, "pending checks"))


async def messages_pending(user: AbstractBaseUser, limit: int) -> tuple[list[Message], bool]:
    """Return up to `limit` messages the user's client has not confirmed, and whether more wait."""
    if str(user.pk) not in await _pending_checks.get().submit(str(user.pk)):
        return [], False
    return await db(selectors.messages_pending_for_user)(user=user, limit=limit)
