"""Who is online, across all web processes, kept in Redis.

Each open socket is a member of the sorted set `<prefix>:presence:<user id>`, scored
with the time of its last heartbeat. A user is online while any socket's
heartbeat is younger than CHAT_PRESENCE_TTL_SECONDS; a socket is refreshed
three times per TTL and removes itself when it closes. A web process that
crashes leaves its members behind, but they age out within the TTL, so no
user stays online for ever.

A web process keeps its sockets in one registry (`ProcessPresence`): their
opens and closes go to Redis in batches, and one heartbeat refreshes all of
them in a few pipelines, instead of a timer and a round trip per socket.

The same set caps the sockets of a user (CHAT_MAX_SOCKETS_PER_USER) across
all web processes: an open is refused, in the script that marks it, when the
user already has that many live members. The sockets of a process that
crashed stop counting once they age out, so the cap survives a crash without
a separate counter to repair, and costs no extra round trip.

The scripts that mark and remove sockets also tell, at no extra round trip,
whose first socket opened and whose last socket closed; the registry hands
those to the presence notifier (presence_notify.py), which tells the
people the user shares a direct conversation with. They also keep the
user's latest heartbeat in `beats`, so that a user whose process died is
found when it stops beating.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

import redis.asyncio as redis
from django.conf import settings
from redis.commands.core import AsyncScript

from core.batching import Coalescer, PerLoop
from users.presence import presence_key, ttl_seconds

from .presence_notify import STATE_SECONDS, beats_key, notifier, state_key

# Users per command when marking sockets: bounds how long one write holds Redis.
MARK_CHUNK = 1000

# A connection pool belongs to one event loop.
_clients: PerLoop[redis.Redis] = PerLoop(lambda: redis.from_url(settings.REDIS_URL))


def _client() -> redis.Redis:
    return _clients.get()


def heartbeat_seconds() -> float:
    """Return how often a socket refreshes its presence: three beats per TTL."""
    return ttl_seconds() / 3


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


### This process's sockets ###

OPEN, CLOSE, REFRESH = "open", "close", "refresh"


class ProcessPresence:
    """The open sockets of this process (one event loop), kept fresh in Redis by one heartbeat."""

    def __init__(self) -> None:
        self.sockets: dict[str, str] = {}  # socket id -> user id
        self.writes: Coalescer[tuple[str, str, str], set[str]] = Coalescer(self._write, "presence writes")
        self.heartbeat: asyncio.Task[None] | None = None

    async def opened(self, user_id: int | str, socket_id: str) -> bool:
        """Register a socket and mark it online; return once Redis has it, False if over the user's cap."""
        self.sockets[socket_id] = str(user_id)
        if self.heartbeat is None or self.heartbeat.done():
            self.heartbeat = asyncio.ensure_future(self._beat())
        notifier().watch(lambda: bool(self.sockets))
        try:
            refused = await self.writes.submit((OPEN, str(user_id), socket_id))
        except BaseException:
            # Refused, or gone while connecting: the open may still have reached Redis.
            if self.sockets.pop(socket_id, None) is not None:
                self.writes.add((CLOSE, str(user_id), socket_id))
            raise
        if socket_id in refused:
            self.sockets.pop(socket_id, None)
            return False
        return True

    async def closed(self, user_id: int | str, socket_id: str) -> None:
        """Forget a socket and remove it from Redis."""
        if self.sockets.pop(socket_id, None) is not None:
            await self.writes.submit((CLOSE, str(user_id), socket_id))

    async def refresh(self) -> None:
        """Refresh every open socket's heartbeat now."""
        await self.writes.submit((REFRESH, "", ""))

    async def _beat(self) -> None:
        while self.sockets:
            await asyncio.sleep(heartbeat_seconds())
            # Redis away for a moment: the batch logged it, and the next beat retries.
            with contextlib.suppress(Exception):
                await self.refresh()

    async def _write(self, changes: list[tuple[str, str, str]]) -> set[str]:
        # Writes go in the order of the changes, in one queue: a refresh reads the
        # registry when it is sent, so it never brings back a socket closed before it.
        # Returns the sockets refused over their user's cap.
        now = time.time()
        refused: set[str] = set()
        for kind, run in itertools.groupby(changes, key=lambda change: change[0]):
            if kind == OPEN:
                opens = [(user_id, socket_id) for _k, user_id, socket_id in run]
                marked = await mark_sockets(opens, now, prune=True, cap=settings.CHAT_MAX_SOCKETS_PER_USER)
                refused |= marked.refused
                notifier().came_online(marked.came_online)
            elif kind == REFRESH:
                marked = await mark_sockets([(user_id, socket_id) for socket_id, user_id in self.sockets.items()], now)
                # Back after this process stalled for longer than the TTL.
                notifier().came_online(marked.came_online)
            else:
                closes = [(user_id, socket_id) for _k, user_id, socket_id in run]
                notifier().went_offline(await remove_sockets(closes, now), now)
        return refused


# Marks many users' sockets with one command: for each user's key (KEYS after
# the first), drop members older than ARGV[2] if ARGV[4] is "1", ZADD its sockets
# at ARGV[1] (with ARGV[5] > 0, only while the key has fewer than ARGV[5]
# members: a new socket past that is refused), expire the key after ARGV[3]
# seconds, and raise the user's latest heartbeat in `beats` (KEYS[1]) to
# ARGV[1]. After those five, for each key: the user id, its socket count, then
# its sockets. Returns the refused sockets, and the users who had no live socket
# before. (One Redis, not a cluster: the keys span slots.)
MARK_SCRIPT = """
local now, stale, expire, prune, cap = ARGV[1], ARGV[2], ARGV[3], ARGV[4] == '1', tonumber(ARGV[5])
local refused, came = {}, {}
local at = 6
for k = 2, #KEYS do
    local key = KEYS[k]
    local user, count = ARGV[at], tonumber(ARGV[at + 1])
    if prune then
        redis.call('ZREMRANGEBYSCORE', key, '-inf', stale)
    end
    local was_live = redis.call('ZCOUNT', key, stale, '+inf') > 0
    local marked = false
    for i = at + 2, at + count + 1 do
        local socket = ARGV[i]
        if cap > 0 and redis.call('ZCARD', key) >= cap and not redis.call('ZSCORE', key, socket) then
            refused[#refused + 1] = socket
        else
            redis.call('ZADD', key, now, socket)
            marked = true
        end
    end
    at = at + count + 2
    redis.call('EXPIRE', key, expire)
    if marked then
        redis.call('ZADD', KEYS[1], 'GT', now, user)
        if not was_live then
            came[#came + 1] = user
        end
    end
end
return {refused, came}
"""

# Removes sockets: for each pair of KEYS after the first (a user's sockets and
# presence state), ZREM the socket named among ARGV after the first three (user
# id, socket id). When that leaves the user no live socket (none beating since
# ARGV[2]), the user leaves `beats` (KEYS[1]) and was last seen at ARGV[1]
# (kept ARGV[3] seconds). Returns those users.
REMOVE_SCRIPT = """
local now, stale, keep = ARGV[1], ARGV[2], ARGV[3]
local gone = {}
for i = 2, #KEYS, 2 do
    local sockets, state = KEYS[i], KEYS[i + 1]
    local user, socket = ARGV[4 + i - 2], ARGV[5 + i - 2]
    if redis.call('ZREM', sockets, socket) == 1 and redis.call('ZCOUNT', sockets, stale, '+inf') == 0 then
        redis.call('ZREM', KEYS[1], user)
        redis.call('HSET', state, 'seen', now)
        redis.call('EXPIRE', state, keep)
        gone[#gone + 1] = user
    end
end
return gone
"""

_mark_scripts: PerLoop[AsyncScript] = PerLoop(lambda: _client().register_script(MARK_SCRIPT))
_remove_scripts: PerLoop[AsyncScript] = PerLoop(lambda: _client().register_script(REMOVE_SCRIPT))


@dataclass
class Marked:
    """What marking sockets did: the sockets refused over their user's cap, and the users who came online."""

    refused: set[str] = field(default_factory=set)
    came_online: list[str] = field(default_factory=list)


async def mark_sockets(sockets: list[tuple[str, str]], now: float, prune: bool = False, cap: int = 0) -> Marked:
    """Mark (user id, socket id) pairs as alive at `now`, a few commands for any number of them.

    With `prune`, also drop members whose heartbeat is older than the TTL
    (sockets of processes that died), as a connect does. With a `cap`, a
    socket is not marked when its user already has that many; those are
    returned, with the users who had no live socket before.
    """
    marked = Marked()
    by_user: dict[str, list[str]] = defaultdict(list)
    for user_id, socket_id in sockets:
        by_user[user_id].append(socket_id)
    users = list(by_user.items())
    ttl = ttl_seconds()
    for start in range(0, len(users), MARK_CHUNK):
        keys: list[str] = [beats_key()]
        args: list[str | float | int] = [now, now - ttl, int(ttl * 2) + 1, "1" if prune else "0", cap]
        for user_id, socket_ids in users[start : start + MARK_CHUNK]:
            keys.append(presence_key(user_id))
            args += [user_id, len(socket_ids), *socket_ids]
        refused, came = await _mark_scripts.get()(keys=keys, args=args)
        marked.refused.update(s.decode() for s in refused)
        marked.came_online += [u.decode() for u in came]
    return marked


async def remove_sockets(sockets: list[tuple[str, str]], now: float) -> list[str]:
    """Remove (user id, socket id) pairs; return the users left without a live socket (last seen `now`)."""
    gone: list[str] = []
    for start in range(0, len(sockets), MARK_CHUNK):
        keys: list[str] = [beats_key()]
        args: list[str | float | int] = [now, now - ttl_seconds(), STATE_SECONDS]
        for user_id, socket_id in sockets[start : start + MARK_CHUNK]:
            keys += [presence_key(user_id), state_key(user_id)]
            args += [user_id, socket_id]
        gone += [u.decode() for u in await _remove_scripts.get()(keys=keys, args=args)]
    return gone


_processes: PerLoop[ProcessPresence] = PerLoop(ProcessPresence)


def process_presence() -> ProcessPresence:
    """Return the registry of this process's (event loop's) sockets."""
    return _processes.get()


async def socket_opened(user_id: int | str, socket_id: str) -> bool:
    """Record that a socket of the user opened in this process; False if the user has too many open."""
    return await process_presence().opened(user_id, socket_id)


async def socket_closed(user_id: int | str, socket_id: str) -> None:
    """Record that a socket of the user closed."""
    await process_presence().closed(user_id, socket_id)
