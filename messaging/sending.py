"""Group commit: sends that queue behind a conversation's row lock share one commit, and so do confirmations.

The senders of one conversation are serialized by its row lock, and each
commit waits for the disk, so one conversation alone would top out at a few
hundred messages a second. Instead, while a transaction of a conversation is
under way in this process, the sends for it that arrive meanwhile wait in
line and are then stored together, in arrival order, in one transaction.
A quiet conversation's send goes at once, alone: batching adds no delay.

Overload pushes back instead of queueing: past CHAT_MAX_SENDS_UNDER_WAY
sends waiting or being stored in this process, a send is refused with
`rate_limited` and `retryAfterMs` (CHAT_OVERLOAD_RETRY_AFTER_MS), so the
time to an ack stays bounded and memory flat however much is offered.
"""

from __future__ import annotations

import asyncio
import uuid

from django.conf import settings

from core.batching import Coalescer, KeyedQueue, PerLoop
from core.db import db
from core.errors import RateLimited

from . import services
from .checks import Draft
from .services import Confirmation, SendOutcome


async def _store(conversation_id: uuid.UUID, drafts: list[Draft]) -> list[SendOutcome]:
    return await db(services.messages_store)(conversation_id=conversation_id, drafts=drafts)


def overloaded() -> RateLimited:
    """Return the refusal of a send that would wait behind too many others: try again after retryAfterMs."""
    return RateLimited(
        "The server is busy; send again after retryAfterMs.",
        retry_after_seconds=settings.CHAT_OVERLOAD_RETRY_AFTER_MS / 1000,
    )


class ConversationSendQueue:
    """Stores the sends of each conversation of one event loop, one transaction at a time per conversation."""

    def __init__(self) -> None:
        self._queue: KeyedQueue[uuid.UUID, Draft, SendOutcome] = KeyedQueue(_store)
        self.under_way = 0

    async def send(self, conversation_id: uuid.UUID, draft: Draft) -> SendOutcome:
        """Store a draft (possibly with others of the same conversation); return its outcome."""
        return await self.submit(conversation_id, draft)

    def submit(self, conversation_id: uuid.UUID, draft: Draft) -> asyncio.Future[SendOutcome]:
        """Queue a draft behind the earlier ones of its conversation; return the future of its outcome.

        Raise RateLimited when this process already has its bound of sends under way.
        """
        if self.under_way >= settings.CHAT_MAX_SENDS_UNDER_WAY:
            raise overloaded()
        future = self._queue.add(conversation_id, draft)
        self.under_way += 1
        future.add_done_callback(self._done)
        return future

    def _done(self, _future: asyncio.Future[SendOutcome]) -> None:
        self.under_way -= 1


### Watermarks ###

Outcomes = dict[tuple[int, uuid.UUID], bool | None]


async def _advance(confirmations: list[Confirmation]) -> Outcomes:
    outcomes = await db(services.watermarks_advance)(confirmations=confirmations)
    return {(c.user_id, c.conversation_id): o for c, o in zip(confirmations, outcomes, strict=True)}


class WatermarkQueue:
    """Records the confirmations (delivered and read) of one event loop's sockets, one transaction at a time.

    Confirmations that arrive while a transaction of them is under way wait
    and then share the next one: a few statements per batch, whatever its size.
    """

    def __init__(self) -> None:
        self._batches: Coalescer[Confirmation, Outcomes] = Coalescer(_advance, "watermark confirmations")

    async def advance(self, confirmation: Confirmation) -> bool | None:
        """Record a confirmation; return whether it moved a watermark, None if the user is not a participant."""
        outcomes = await self._batches.submit(confirmation)
        return outcomes[(confirmation.user_id, confirmation.conversation_id)]


_send_queues: PerLoop[ConversationSendQueue] = PerLoop(ConversationSendQueue)
_watermark_queues: PerLoop[WatermarkQueue] = PerLoop(WatermarkQueue)


def watermark_queue() -> WatermarkQueue:
    """Return the watermark queue of the running event loop."""
    return _watermark_queues.get()


def send_queue() -> ConversationSendQueue:
    """Return the send queue of the running event loop."""
    return _send_queues.get()
