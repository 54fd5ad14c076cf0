"""Whether a user is online and when they were last seen, as every answer about users shows it (PROTOCOL.md §7).

A user is online while a socket of theirs is open in any web process. The
web processes keep each user's open sockets as members of the sorted set
`<prefix>:presence:<user id>` in Redis, scored by their latest heartbeat
(messaging/presence.py writes them); a member older than
CHAT_PRESENCE_TTL_SECONDS belongs to a process that died and no longer
counts. `lastSeenAt` is when the user's last socket closed
(`Profile.last_seen_at`), shown only while the user is offline.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Iterable
from datetime import datetime
from typing import Any

import redis
from django.conf import settings

from core.parsing import iso_utc

logger = logging.getLogger(__name__)


def presence_key(user_id: int | str) -> str:
    """Return the Redis key of the set of a user's open sockets."""
    return f"{settings.REDIS_PREFIX}:presence:{user_id}"


def ttl_seconds() -> float:
    return settings.CHAT_PRESENCE_TTL_SECONDS


def presence_fields(online: bool, last_seen_at: datetime | None) -> dict[str, Any]:
    """Return the presence fields of a user in answers and frames: `online`, and `lastSeenAt` while offline."""
    return {"online": online, "lastSeenAt": iso_utc(last_seen_at) if last_seen_at and not online else None}


@functools.cache
def _client(url: str) -> redis.Redis:
    return redis.Redis.from_url(url)


def online_now(user_ids: Iterable[int | str]) -> set[str]:
    """Return which of the users have a live socket, in one round trip (for views; none when Redis is away)."""
    ids = list(dict.fromkeys(str(u) for u in user_ids))
    if not ids:
        return set()
    since = time.time() - ttl_seconds()
    try:
        with _client(settings.REDIS_URL).pipeline(transaction=False) as pipe:
            for user_id in ids:
                pipe.zcount(presence_key(user_id), since, "+inf")
            counts = pipe.execute()
    except redis.RedisError:
        # An answer without presence beats no answer: everyone shows as offline until Redis is back.
        logger.warning("Presence unavailable (Redis); showing %d users offline", len(ids), exc_info=True)
        return set()
    return {user_id for user_id, count in zip(ids, counts, strict=True) if count}
