"""A connected client never waits for a reconnect to get a message the live path dropped (PROTOCOL.md §6).

Each web process asks, for all of its connected users at once, which of
their conversations hold messages of others above their delivered
watermarks. A lag during which the watermark has not moved for
CHAT_REDELIVER_AFTER_SECONDS (the client did not confirm those messages
meanwhile) is sent again as `message.new` to that user's sockets in this
process, each socket getting only what it was not sent yet (repeats.py): a
client that was sent a message but has not confirmed it (a gap before it
holds its watermark back) gets only the gap. A client that holds what it
got confirms within that time, so it is sent no repeats. One query per
round for the whole process, never one per socket.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from dataclasses import dataclass, field

from django.conf import settings

from core.batching import PerLoop
from core.db import db

from . import selectors
from .metrics import REDELIVERED
from .realtime import encode_frame, local_sockets
from .repeats import seq_key

logger = logging.getLogger(__name__)

# Users asked about per query.
CHUNK = 1000

Lag = tuple[int, uuid.UUID, int, int]  # user id, conversation id, delivered seq, last seq


@dataclass(frozen=True, slots=True)
class Seen:
    """A lag as first seen: the last seq then, when, and the delivered seq then."""

    last_seq: int
    at: float
    delivered_seq: int


@dataclass
class LagTracker:
    """Which lags to resend; the clock is passed in.

    A lag is resent when the user's delivered watermark has not moved at all
    for the whole bound: the client is missing a message (a gap holds its
    watermark back) or gets nothing. A watermark that moves, however far
    behind, is a slow live path still delivering: resending to it would add
    work where there is already too much, so it waits.
    """

    after_seconds: float
    since: dict[tuple[int, uuid.UUID], Seen] = field(default_factory=dict)

    def due(self, lagging: list[Lag], now: float) -> list[Lag]:
        """Take this round's lags; return (user, conversation, delivered seq, up to seq) of those to resend."""
        due: list[Lag] = []
        still: dict[tuple[int, uuid.UUID], Seen] = {}
        for user_id, conversation_id, delivered_seq, last_seq in lagging:
            key = (user_id, conversation_id)
            seen = self.since.get(key)
            if seen is None or seen.last_seq <= delivered_seq or seen.delivered_seq != delivered_seq:
                still[key] = Seen(last_seq, now, delivered_seq)  # new, or moving: look again from here
            elif now - seen.at >= self.after_seconds:
                due.append((user_id, conversation_id, delivered_seq, seen.last_seq))
                still[key] = Seen(last_seq, now, delivered_seq)
            else:
                still[key] = seen
        self.since = still
        return due


def _round_seconds() -> float:
    # Four looks per bound: a dropped message comes again within 1.25 times the bound.
    return max(settings.CHAT_REDELIVER_AFTER_SECONDS / 4, 0.1)


class Redelivery:
    """The redelivery rounds of one web process (event loop)."""

    def __init__(self) -> None:
        self.tracker = LagTracker(settings.CHAT_REDELIVER_AFTER_SECONDS)
        self.task: asyncio.Task[None] | None = None

    def watch(self) -> None:
        """Start the rounds, unless they run already."""
        if self.task is None or self.task.done():
            self.task = asyncio.ensure_future(self._rounds())

    async def _rounds(self) -> None:
        while local_sockets().user_ids():
            await asyncio.sleep(_round_seconds())
            try:
                await self.round(time.monotonic())
            except Exception:
                logger.warning("A redelivery round failed; the next one tries again", exc_info=True)

    async def round(self, now: float) -> int:
        """Look at every connected user's watermarks once and resend what is due; return how many frames went out.

        A socket is not sent what it got already (repeats.py): only what the live path dropped.
        """
        user_ids = local_sockets().user_ids()
        lagging: list[Lag] = []
        for start in range(0, len(user_ids), CHUNK):
            lagging += await db(selectors.lagging_watermarks)(user_ids[start : start + CHUNK])
        sent = 0
        for user_id, conversation_id, delivered_seq, up_to_seq in self.tracker.due(lagging, now):
            messages = await db(_missing)(user_id, conversation_id, delivered_seq, up_to_seq)
            for message in messages:
                frame = {"type": "message.new", "message": message}
                sent += await local_sockets().send(user_id, encode_frame(frame), key=seq_key(frame))
        REDELIVERED.inc(sent)
        return sent


def _missing(user_id: int, conversation_id: uuid.UUID, delivered_seq: int, up_to_seq: int) -> list[dict[str, object]]:
    # The user's own messages are left out: its client has them from the ack (or resends and gets the original).
    messages = selectors.messages_between(
        conversation_id=conversation_id,
        after_seq=delivered_seq,
        up_to_seq=up_to_seq,
        limit=settings.CHAT_SYNC_BATCH_MAX,
    )
    return selectors.messages_wire([m for m in messages if m.sender_id != user_id])


_redelivery: PerLoop[Redelivery] = PerLoop(Redelivery)


def watch() -> None:
    """Make sure this process's redelivery rounds run (called when a socket opens)."""
    _redelivery.get().watch()
