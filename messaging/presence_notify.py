"""Telling people when someone they share a direct conversation with comes online or goes offline (PROTOCOL.md §7).

Transitions. The Redis scripts that mark and remove sockets
(messaging/presence.py) also report whose first socket opened (came online)
and whose last socket closed (went offline; the time is their lastSeenAt,
stored in the same script). A web process that dies closes nothing: each
online user is a member of the sorted set `beats`, scored by their latest
heartbeat from any process, and a score older than
CHAT_PRESENCE_TTL_SECONDS means that none of their sockets is alive.

Coalescing. For each user, Redis keeps what the people watching them were
last told (`online`, `at`: when, `n`: how many times) and when their last
socket closed (`seen`). `next_frame` says when a frame is due: only when
the user's state differs from what was told, never sooner than
CHAT_PRESENCE_NOTIFY_SECONDS after the last frame, and for going offline
never sooner than that after the close. So a reconnect within the window
(a reload, a network blip) finds nothing to tell, and nobody gets more than
one frame per watched user per window.

Due. A frame due later is a member of the sorted set `due`, scored by its
time. Every web process with open sockets polls it a few times per window
and takes, with one script call, what is due and who stopped beating, so a
frame still goes when the process that scheduled it has stopped.

Claim. The decision is made here, on one read of the state; the claim
script records the new announcement only if nobody announced since (`n`)
and the user is still in the state to announce. Of several processes
deciding about one user at once, one sends; a change that lands between
the read and the claim makes the claim fail, and that change's own
decision follows.

Fan-out. Frames go from the process that claims them through the channel
layer to every web process (`realtime.push_frames`), as the bridge's
frames do, and not through Kafka: presence is a state of the moment, not a
record to keep, replay or deliver after a restart, and a lost frame is
repaired by the REST answers a client reloads when it reconnects. The
contract's four topics stay four.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

import redis.asyncio as redis
from django.conf import settings
from redis.commands.core import AsyncScript

from core.batching import Coalescer, PerLoop
from core.db import db
from users.presence import presence_key, ttl_seconds
from users.services import users_last_seen_set

from . import selectors
from .realtime import Push, push_frames
from .wire import presence_frame

logger = logging.getLogger(__name__)

# Users taken from `due` and `beats` per poll, and per claim script call.
CHUNK = 1000
# How long Redis keeps what a user's watchers were told once nothing changes. A state that expired
# reads as "told offline", which is right for a user away that long (an online one's watchers may
# get a repeat of "online").
STATE_SECONDS = 24 * 3600


def window_seconds() -> float:
    return settings.CHAT_PRESENCE_NOTIFY_SECONDS


def poll_seconds() -> float:
    """Return how often a web process looks for frames due: four times per window, at most once a second."""
    return max(min(window_seconds() / 4, 1.0), 0.05)


def _key(name: str) -> str:
    return f"{settings.REDIS_PREFIX}:presence-notify:{name}"


def beats_key() -> str:
    """Return the key of the sorted set of online users, scored by their latest heartbeat."""
    return _key("beats")


def due_key() -> str:
    """Return the key of the sorted set of users whose watchers may be due a frame, scored by when."""
    return _key("due")


def state_key(user_id: int | str) -> str:
    """Return the key of the hash of what a user's watchers were last told, and when the user was last seen."""
    return _key(f"state:{user_id}")


### The policy ###


@dataclass(frozen=True, slots=True)
class Watched:
    """What is known of one user's presence: whether a socket is open, what was told, when last seen."""

    user_id: str
    live: bool
    told_online: bool = False
    told_at: float = 0.0  # when the last frame about the user went (0: never)
    told_count: int = 0
    seen: float | None = None  # when the user's last socket closed


def next_frame(user: Watched, window: float) -> float | None:
    """Return when the user's watchers are due a frame (a time, maybe past), or None when they know already."""
    if user.live == user.told_online:
        return None
    due = user.told_at + window
    if not user.live:
        # Gone for a whole window before anyone is told: a reconnect within it is no change.
        due = max(due, (user.seen or 0.0) + window)
    return due


### The state in Redis ###

_clients: PerLoop[redis.Redis] = PerLoop(lambda: redis.from_url(settings.REDIS_URL))


def _client() -> redis.Redis:
    return _clients.get()


async def read_watched(user_ids: list[str], now: float) -> list[Watched]:
    """Read the presence state of the users, in one round trip."""
    async with _client().pipeline(transaction=False) as pipe:
        for user_id in user_ids:
            pipe.zcount(presence_key(user_id), now - ttl_seconds(), "+inf")
            pipe.hmget(state_key(user_id), "online", "at", "n", "seen")
        replies = await pipe.execute()
    watched = []
    for i, user_id in enumerate(user_ids):
        live, (online, at, count, seen) = replies[2 * i], replies[2 * i + 1]
        watched.append(
            Watched(
                user_id=user_id,
                live=live > 0,
                told_online=online == b"1",
                told_at=float(at or 0),
                told_count=int(count or 0),
                seen=float(seen) if seen else None,
            )
        )
    return watched


# For each user (KEYS: the due set, then the user's sockets and state; ARGV after the first three: user id,
# the count read, the state to announce), record the announcement if nobody announced since and the user is
# still in that state. Returns user id and last seen (or "") of each claimed.
CLAIM_SCRIPT = """
local now, stale, keep = ARGV[1], ARGV[2], ARGV[3]
local claimed = {}
for i = 2, #KEYS, 2 do
    local sockets, state = KEYS[i], KEYS[i + 1]
    local at = 4 + (i - 2) / 2 * 3
    local user, count, online = ARGV[at], ARGV[at + 1], ARGV[at + 2]
    local live = redis.call('ZCOUNT', sockets, stale, '+inf') > 0
    if (redis.call('HGET', state, 'n') or '0') == count and live == (online == '1') then
        redis.call('HSET', state, 'n', tonumber(count) + 1, 'online', online, 'at', now)
        redis.call('EXPIRE', state, keep)
        redis.call('ZREM', KEYS[1], user)
        claimed[#claimed + 1] = user
        claimed[#claimed + 1] = redis.call('HGET', state, 'seen') or ''
    end
end
return claimed
"""

# Take (and remove) the users whose frame is due by ARGV[1] from `due` (KEYS[1]), and those whose latest
# heartbeat is older than ARGV[2] from `beats` (KEYS[2]): their last socket's process died. For those, the
# last heartbeat becomes their last seen, in their state (ARGV[4] followed by the user id). At most ARGV[3]
# of each. Returns the due user ids, and user id and last heartbeat of each that stopped beating.
POLL_SCRIPT = """
local now, stale, limit, prefix, keep = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, limit)
if #due > 0 then
    redis.call('ZREM', KEYS[1], unpack(due))
end
local quiet = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', stale, 'WITHSCORES', 'LIMIT', 0, limit)
for i = 1, #quiet, 2 do
    local user, beat = quiet[i], quiet[i + 1]
    local state = prefix .. user
    redis.call('ZREM', KEYS[2], user)
    if tonumber(redis.call('HGET', state, 'seen') or '0') < tonumber(beat) then
        redis.call('HSET', state, 'seen', beat)
        redis.call('EXPIRE', state, keep)
    end
end
return {due, quiet}
"""

_claim_scripts: PerLoop[AsyncScript] = PerLoop(lambda: _client().register_script(CLAIM_SCRIPT))
_poll_scripts: PerLoop[AsyncScript] = PerLoop(lambda: _client().register_script(POLL_SCRIPT))


async def claim(announce: list[Watched], now: float) -> dict[str, float | None]:
    """Record that the users' watchers are told their state now; return those claimed, with their last seen."""
    claimed: dict[str, float | None] = {}
    for start in range(0, len(announce), CHUNK):
        keys = [due_key()]
        args: list[str | float | int] = [now, now - ttl_seconds(), STATE_SECONDS]
        for user in announce[start : start + CHUNK]:
            keys += [presence_key(user.user_id), state_key(user.user_id)]
            args += [user.user_id, user.told_count, "1" if user.live else "0"]
        reply = await _claim_scripts.get()(keys=keys, args=args)
        for user_id, seen in zip(reply[::2], reply[1::2], strict=True):
            claimed[user_id.decode()] = float(seen) if seen else None
    return claimed


async def take_due(now: float) -> tuple[list[str], dict[str, float]]:
    """Take the users whose frame is due, and those whose sockets stopped beating (with their last heartbeat)."""
    due, quiet = await _poll_scripts.get()(
        keys=[due_key(), beats_key()],
        args=[now, now - ttl_seconds(), CHUNK, state_key(""), STATE_SECONDS],
    )
    stopped = {user_id.decode(): float(beat) for user_id, beat in zip(quiet[::2], quiet[1::2], strict=True)}
    return [user_id.decode() for user_id in due], stopped


### This process's part ###


def _moment(epoch: float | None) -> datetime | None:
    return datetime.fromtimestamp(epoch, tz=UTC) if epoch is not None else None


def _record_last_seen_now(seen: dict[str, float]) -> None:
    by_time: dict[float, list[str]] = defaultdict(list)
    for user_id, at in seen.items():
        by_time[at].append(user_id)
    for at, user_ids in by_time.items():
        users_last_seen_set(user_ids=user_ids, at=datetime.fromtimestamp(at, tz=UTC))


_record_last_seen = db(_record_last_seen_now)
_direct_partner_ids = db(selectors.direct_partner_ids)

Change = tuple[str, float | None]  # user id, and the time its last socket closed (None: its first opened)


class PresenceNotifier:
    """Decides, sends and schedules the presence frames of the transitions one web process (event loop) sees.

    The database and the fan-out are passed in, so that the policy and its
    Redis state can be tested without them.
    """

    def __init__(
        self,
        partners: Callable[[list[str]], Awaitable[dict[str, set[str]]]] = _direct_partner_ids,
        record_last_seen: Callable[[dict[str, float]], Awaitable[None]] = _record_last_seen,
        push: Callable[[list[Push]], Awaitable[None]] = push_frames,
    ) -> None:
        self.partners = partners
        self.record_last_seen = record_last_seen
        self.push = push
        self.changes: Coalescer[Change, None] = Coalescer(self._changed, "presence changes")
        self.poller: asyncio.Task[None] | None = None

    def came_online(self, user_ids: Iterable[str]) -> asyncio.Future[None] | None:
        """Take note that these users' first socket opened; return the future of the batch, if any."""
        return self._add([(user_id, None) for user_id in user_ids])

    def went_offline(self, user_ids: Iterable[str], at: float) -> asyncio.Future[None] | None:
        """Take note that these users' last socket closed at `at`; return the future of the batch, if any."""
        return self._add([(user_id, at) for user_id in user_ids])

    def _add(self, changes: list[Change]) -> asyncio.Future[None] | None:
        batch = None
        for change in changes:
            batch = self.changes.add(change)
        return batch

    def watch(self, active: Callable[[], bool]) -> None:
        """Poll for due frames while `active()` (this process has sockets), unless polling already."""
        if self.poller is None or self.poller.done():
            self.poller = asyncio.ensure_future(self._poll_while(active))

    async def _changed(self, changes: list[Change]) -> None:
        # One batch at a time, in the order seen: a batch's last-seen times are written before the next batch's.
        closed = {user_id: at for user_id, at in changes if at is not None}
        try:
            await self.notify(list(dict.fromkeys(user_id for user_id, _at in changes)), time.time())
        finally:
            # Whatever became of the frames (the database and Redis fail apart).
            if closed:
                await self.record_last_seen(closed)

    async def _poll_while(self, active: Callable[[], bool]) -> None:
        while active():
            await asyncio.sleep(poll_seconds())
            try:
                await self.poll(time.time())
            except Exception:
                # Redis away for a moment: what was taken is lost (REST answers stay right); the rest waits.
                logger.warning("Presence poll failed; the next one tries again", exc_info=True)

    async def poll(self, now: float) -> None:
        """Send the frames due by `now`, and those of users whose sockets stopped beating."""
        due, stopped = await take_due(now)
        try:
            await self.notify(list(dict.fromkeys([*due, *stopped])), now)
        finally:
            if stopped:
                await self.record_last_seen(stopped)

    async def notify(self, user_ids: list[str], now: float) -> int:
        """Tell the users' direct partners what changed, now or when due; return how many users were told."""
        if not user_ids:
            return 0
        watched = await read_watched(user_ids, now)
        window = window_seconds()
        announce: list[Watched] = []
        later: dict[str, float] = {}
        for user in watched:
            due = next_frame(user, window)
            if due is None:
                continue
            if due <= now:
                announce.append(user)
            else:
                later[user.user_id] = due
        if later:
            await _client().zadd(due_key(), later)
        claimed = await claim(announce, now) if announce else {}
        if claimed:
            partners = await self.partners(list(claimed))
            online = {user.user_id: user.live for user in announce}
            pushes: list[Push] = [
                (partners[user_id], presence_frame(user_id, online[user_id], _moment(seen)), None)
                for user_id, seen in claimed.items()
                if partners.get(user_id)
            ]
            await self.push(pushes)
        return len(claimed)


_notifiers: PerLoop[PresenceNotifier] = PerLoop(PresenceNotifier)


def notifier() -> PresenceNotifier:
    """Return this process's (event loop's) presence notifier."""
    return _notifiers.get()
