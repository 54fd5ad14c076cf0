"""Rate limits shared by every web process, kept in Redis.

A limit is of one of two kinds:

- a `Window`: at most `limit` actions in any `seconds` (a sliding log, one
  sorted-set member per action), which is what the settings' "N/period"
  says: "10/15m" is at most 10 in any fifteen minutes; the period is a
  number (default 1) and a unit (s, m, h, d, or sec, min, hour, day), as in
  DRF's "120/min";
- a `Bucket`: a burst, then one more every `interval` seconds (GCRA, a
  token bucket kept as one timestamp per key), for the sends' burst and
  steady rate.

A check is one script call, whatever the number of keys it spends from:
either every key has room and each is spent, or none is touched and the
caller learns how long to wait. The script reads Redis's own clock, so web
processes on different hosts agree.

When Redis does not answer, a check lets the action through and logs it:
an outage of the limiter must not take the chat down with it.
"""

from __future__ import annotations

import functools
import ipaddress
import logging
import re
from dataclasses import dataclass, field
from typing import Any

import redis
import redis.asyncio as aredis
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from redis.commands.core import AsyncScript, Script
from rest_framework.settings import api_settings
from rest_framework.throttling import BaseThrottle

from core.batching import Coalescer, PerLoop

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Window:
    """At most `limit` actions in any `seconds`."""

    limit: int
    seconds: float


@dataclass(frozen=True)
class Bucket:
    """A burst of `burst` actions, then one every `interval` seconds."""

    burst: int
    interval: float

    @classmethod
    def per_second(cls, burst: int, rate: float) -> Bucket:
        """Return a burst, then `rate` actions per second."""
        return cls(burst=max(1, burst), interval=1 / rate if rate > 0 else float("inf"))


Rate = Window | Bucket


UNITS = {"s": 1, "sec": 1, "second": 1, "m": 60, "min": 60, "minute": 60}
UNITS |= {"h": 3600, "hour": 3600, "d": 86400, "day": 86400}
RATE_PATTERN = re.compile(r"^\s*(\d+)\s*/\s*(\d+(?:\.\d+)?)?\s*([a-z]+)\s*$")


@functools.lru_cache(maxsize=64)
def parse_rate(spec: str) -> Window:
    """Parse "N/period" ("10/15m", "120/min", "20/h"): at most N in any such period."""
    match = RATE_PATTERN.match(spec.lower())
    if match is None or match.group(3) not in UNITS or int(match.group(1)) < 1:
        raise ImproperlyConfigured(f"Not a rate: {spec!r} (write e.g. '10/15m', '120/min', '20/h').")
    count, multiple, unit = int(match.group(1)), float(match.group(2) or 1), UNITS[match.group(3)]
    return Window(limit=count, seconds=multiple * unit)


@dataclass(frozen=True)
class Spend:
    """One key of a check: spend one action of `rate` from it, or give one back, or empty it."""

    key: str
    rate: Rate
    mode: str = "take"  # "take", "refund" (give the last one back), or "reset" (empty it, if the others have room)


def limit_key(name: str, ident: str | int) -> str:
    """Return the Redis key of one limit (`name`) for one subject (a user id, an address)."""
    return f"{settings.REDIS_PREFIX}:limit:{name}:{ident}"


### The script ###

# ARGV[1] is the number of checks; then, for each check, its number of keys
# followed by (kind, span ms, size, mode) per key: kind "w" is a Window (span:
# its length, size: its limit), "b" a Bucket (span: its interval, size: its
# burst). KEYS holds every check's keys in the same order. Returns, for each
# check, {denied, wait ms}: denied is 0 when every key had room (and was spent),
# else the 1-based position of the first key without room (nothing of the check
# was spent).
LIMIT_SCRIPT = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local results = {}
local at, k = 2, 1
for c = 1, tonumber(ARGV[1]) do
    local n = tonumber(ARGV[at])
    at = at + 1
    local denied, wait, writes = 0, 0, {}
    for i = 1, n do
        local key, kind, mode = KEYS[k], ARGV[at], ARGV[at + 3]
        local span, size = tonumber(ARGV[at + 1]), tonumber(ARGV[at + 2])
        k, at = k + 1, at + 4
        local allowed_at = now
        if kind == 'w' then
            redis.call('ZREMRANGEBYSCORE', key, '-inf', now - span)
            if mode == 'take' then
                local count = redis.call('ZCARD', key)
                if count >= size then
                    allowed_at = tonumber(redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')[2]) + span
                else
                    writes[#writes + 1] = {'zadd', key, string.format('%d-%09d', now, count), span}
                end
            elseif mode == 'refund' then
                writes[#writes + 1] = {'zpopmax', key}
            else
                writes[#writes + 1] = {'del', key}
            end
        else
            local tat = math.max(tonumber(redis.call('GET', key) or '0'), now)
            if mode == 'take' then
                allowed_at = tat + span - size * span
                if allowed_at <= now then
                    writes[#writes + 1] = {'set', key, tat + span}
                end
            elseif mode == 'refund' then
                writes[#writes + 1] = {'set', key, tat - span}
            else
                writes[#writes + 1] = {'del', key}
            end
        end
        if allowed_at > now then
            if denied == 0 then denied = i end
            wait = math.max(wait, allowed_at - now)
        end
    end
    if denied == 0 then
        for _, w in ipairs(writes) do
            if w[1] == 'zadd' then
                redis.call('ZADD', w[2], now, w[3])
                redis.call('PEXPIRE', w[2], math.ceil(w[4]))
            elseif w[1] == 'zpopmax' then
                redis.call('ZPOPMAX', w[2])
            elseif w[1] == 'set' and w[3] > now then
                redis.call('SET', w[2], string.format('%.3f', w[3]), 'PX', math.ceil(w[3] - now))
            else
                redis.call('DEL', w[2])
            end
        end
    end
    results[c] = {denied, math.ceil(wait)}
end
return results
"""

# A span longer than this stands for "never" (a Bucket refilled at a rate of 0).
LONGEST_SPAN_MS = 86_400_000.0


def _script_args(checks: list[list[Spend]]) -> tuple[list[str], list[str | int | float]]:
    keys: list[str] = []
    args: list[str | int | float] = [len(checks)]
    for spends in checks:
        args.append(len(spends))
        for spend in spends:
            keys.append(spend.key)
            rate = spend.rate
            if isinstance(rate, Window):
                kind, span, size = "w", rate.seconds * 1000, rate.limit
            else:
                kind, span, size = "b", rate.interval * 1000, rate.burst
            args += [kind, repr(min(span, LONGEST_SPAN_MS)), size, spend.mode]
    return keys, args


@dataclass(frozen=True)
class Verdict:
    """The outcome of one check: allowed, or which key was full and how long to wait."""

    denied: int = 0  # 0: allowed; else the 1-based position of the first full key
    wait_seconds: float = 0.0

    @property
    def allowed(self) -> bool:
        return self.denied == 0


ALLOWED = Verdict()


def _verdicts(raw: list[list[int]]) -> list[Verdict]:
    return [Verdict(denied=int(denied), wait_seconds=int(wait_ms) / 1000) for denied, wait_ms in raw]


### From synchronous code (views) ###


@functools.cache
def _sync_script() -> Script:
    return redis.Redis.from_url(settings.REDIS_URL).register_script(LIMIT_SCRIPT)


def check(spends: list[Spend]) -> Verdict:
    """Spend from every key of one check, all or nothing, in one round trip (for views)."""
    keys, args = _script_args([spends])
    try:
        (verdict,) = _verdicts(_sync_script()(keys=keys, args=args))
    except redis.RedisError:
        logger.warning("Rate limits unavailable (Redis); letting the request through", exc_info=True)
        return ALLOWED
    return verdict


### From the event loop (WebSocket consumers) ###


@dataclass
class _Pending:
    spends: list[Spend]
    verdict: Verdict = field(default=ALLOWED)


def _async_script() -> AsyncScript:
    return aredis.from_url(settings.REDIS_URL).register_script(LIMIT_SCRIPT)


_scripts: PerLoop[AsyncScript] = PerLoop(_async_script)


async def _serve(batch: list[_Pending]) -> None:
    # The checks of one moment (every socket of this process) share one script call.
    keys, args = _script_args([pending.spends for pending in batch])
    try:
        raw = await _scripts.get()(keys=keys, args=args)
    except redis.RedisError:
        logger.warning("Rate limits unavailable (Redis); letting %d requests through", len(batch), exc_info=True)
        return
    for pending, verdict in zip(batch, _verdicts(raw), strict=True):
        pending.verdict = verdict


_batches: PerLoop[Coalescer[_Pending, None]] = PerLoop(lambda: Coalescer(_serve, "rate limit checks"))


async def check_async(spends: list[Spend]) -> Verdict:
    """Spend from every key of one check, all or nothing; the checks of one moment share a round trip."""
    pending = _Pending(spends)
    await _batches.get().submit(pending)
    return pending.verdict


### Who is asking ###


def client_address(request: Any) -> str:
    """Return the client's address, the subject of per-address limits.

    REMOTE_ADDR, unless CHAT_TRUSTED_PROXIES reverse proxies stand in front:
    then the address the outermost of them saw, from X-Forwarded-For (each
    proxy appends the address it saw, so entries further left are the
    client's own word and are ignored). An IPv6 client is counted by its
    /64 network, which one subscriber usually holds whole.
    """
    address = request.META.get("REMOTE_ADDR") or ""
    proxies = settings.CHAT_TRUSTED_PROXIES
    if proxies > 0:
        forwarded = [a.strip() for a in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if a.strip()]
        if forwarded:
            address = forwarded[-min(proxies, len(forwarded))]
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address[:64]
    if ip.version == 6:
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)


### Django REST framework ###


class SharedRateThrottle(BaseThrottle):
    """DRF throttle of the view's `throttle_scope`, per user (per address when anonymous), counted in Redis.

    Its rate is DEFAULT_THROTTLE_RATES[scope] ("120/min"). Unlike DRF's own
    throttles (a history list read and written back through the cache), one
    atomic script call per request: every web process counts the same.
    """

    verdict: Verdict = ALLOWED

    def allow_request(self, request: Any, view: Any) -> bool:
        scope = view.throttle_scope
        rate = parse_rate(api_settings.DEFAULT_THROTTLE_RATES[scope])
        user = getattr(request, "user", None)
        ident = user.pk if user is not None and user.is_authenticated else client_address(request)
        self.verdict = check([Spend(limit_key(f"rest-{scope}", ident), rate)])
        return self.verdict.allowed

    def wait(self) -> float | None:
        return self.verdict.wait_seconds
