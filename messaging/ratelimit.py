"""Per-user limits of the WebSocket, shared by all of a user's sockets in every web process.

Each is one script call to Redis (core/ratelimit.py); the checks that
the sockets of one process make at the same moment share it.

- `message.send`: a burst of CHAT_SEND_BURST, then CHAT_SEND_RATE_PER_SECOND.
- `sync`: CHAT_SYNC_RATE.
- `typing`: `isTyping: true` goes out at most once per user and conversation
  every CHAT_TYPING_INTERVAL_SECONDS (the others already see the user typing,
  so a repeat is dropped without an answer); `false` lets the next `true` go
  at once. Every typing frame that goes out counts towards CHAT_TYPING_RATE.

Over a limit, the request is refused with `rate_limited` and `retryAfterMs`.
"""

from __future__ import annotations

from django.conf import settings

from core.errors import RateLimited
from core.ratelimit import Bucket, Spend, Verdict, Window, check_async, limit_key, parse_rate


def _refuse_unless_allowed(verdict: Verdict) -> None:
    if not verdict.allowed:
        raise RateLimited(retry_after_seconds=verdict.wait_seconds)


async def send_check(user_id: int | str) -> None:
    """Count one `message.send` of the user; raise RateLimited over the limit."""
    rate = Bucket.per_second(settings.CHAT_SEND_BURST, settings.CHAT_SEND_RATE_PER_SECOND)
    _refuse_unless_allowed(await check_async([Spend(limit_key("ws-send", user_id), rate)]))


async def sync_check(user_id: int | str) -> None:
    """Count one `sync` of the user; raise RateLimited over the limit."""
    rate = parse_rate(settings.CHAT_SYNC_RATE)
    _refuse_unless_allowed(await check_async([Spend(limit_key("ws-sync", user_id), rate)]))


async def typing_check(user_id: int | str, conversation_id: str, is_typing: bool) -> bool:
    """Count one typing frame of the user; return False for a `true` to drop, raise RateLimited over the limit."""
    once = Window(limit=1, seconds=settings.CHAT_TYPING_INTERVAL_SECONDS)
    repeat = Spend(limit_key("ws-typing-on", f"{user_id}:{conversation_id}"), once, "take" if is_typing else "reset")
    frames = Spend(limit_key("ws-typing", user_id), parse_rate(settings.CHAT_TYPING_RATE))
    verdict = await check_async([repeat, frames])
    if verdict.denied == 1:
        return False
    _refuse_unless_allowed(verdict)
    return True
