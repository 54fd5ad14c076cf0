"""Who is online, across all web processes, kept in Redis.

Each open socket is a member of the sorted set `<prefix>:presence:<user id>`, scored
with the time of its last heartbeat. A user is online while any socket's
heartbeat is younger than CHAT_PRESENCE_TTL_SECONDS; the socket refreshes it
three times per TTL and removes itself when it closes. A web process that
crashes leaves its members behind, but they age out within the TTL, so no
user stays online for ever.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable

import redis.asyncio as redis
from django.conf import settings

_clients: dict[asyncio.AbstractEventLoop, redis.Redis] = {}


def _client() -> redis.Redis:
    # A connection pool belongs to one event loop.
    loop = asyncio.get_running_loop()
    client = _clients.get(loop)
    if client is None:
        client = _clients[loop] = redis.from_url(settings.REDIS_URL)
    return client


def ttl_seconds() -> float:
    return settings.CHAT_PRESENCE_TTL_SECONDS


def heartbeat_seconds() -> float:
    """Return how often a socket refreshes its presence: three beats per TTL."""
    return settings.CHAT_PRESENCE_TTL_SECONDS / 3


def presence_key(user_id: int | str) -> str:
    return f"{settings.REDIS_PREFIX}:presence:{user_id}"


async def presence_mark(user_id: int | str, socket_id: str) -> None:
    """Record that a socket of the user is open (on connect and on every heartbeat)."""
    key = presence_key(user_id)
    now = time.time()
    async with _client().pipeline(transaction=True) as pipe:
        pipe.zadd(key, {socket_id: now})
        pipe.zremrangebyscore(key, "-inf", now - ttl_seconds())
        pipe.expire(key, int(ttl_seconds() * 2) + 1)
        await pipe.execute()


async def presence_clear(user_id: int | str, socket_id: str) -> None:
    """Record that a socket of the user closed."""
    await _client().zrem(presence_key(user_id), socket_id)


async def online_user_ids(user_ids: Iterable[int | str]) -> set[str]:
    """Return which of the given users have a live socket."""
    ids = [str(u) for u in user_ids]
    if not ids:
        return set()
    since = time.time() - ttl_seconds()
    async with _client().pipeline(transaction=False) as pipe:
        for user_id in ids:
            pipe.zcount(presence_key(user_id), since, "+inf")
        counts = await pipe.execute()
    return {user_id for user_id, count in zip(ids, counts, strict=True) if count}
