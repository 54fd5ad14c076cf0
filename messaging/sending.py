"""Group commit: sends that queue behind a conversation's row lock share one commit, and so do receipts.

The senders of one conversation are serialized by its row lock, and each
commit waits for the disk, so one conversation alone would top out at a few
hundred messages a second. Instead, while a transaction of a conversation is
under way in this process, the sends for it that arrive meanwhile wait in
line and are then stored together, in arrival order, in one transaction.
A quiet conversation's send goes at once, alone: batching adds no delay.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import TypeVar

from core.db import db

from . import services
from .checks import Draft
from .services import SendOutcome

Q = TypeVar("Q")
Waiting = list[tuple[Draft, asyncio.Future[SendOutcome]]]


class ConversationSendQueue:
    """Stores the sends of each conversation of one event loop, one transaction at a time per conversation."""

    def __init__(self) -> None:
        self._waiting: dict[uuid.UUID, Waiting] = {}
        self._drains: set[asyncio.Task[None]] = set()

    async def send(self, conversation_id: uuid.UUID, draft: Draft) -> SendOutcome:
        """Store a draft (possibly with others of the same conversation); return its outcome."""
        return await self.submit(conversation_id, draft)

    def submit(self, conversation_id: uuid.UUID, draft: Draft) -> asyncio.Future[SendOutcome]:
        """Queue a draft behind the earlier ones of its conversation; return the future of its outcome."""
        future: asyncio.Future[SendOutcome] = asyncio.get_running_loop().create_future()
        waiting = self._waiting.get(conversation_id)
        if waiting is None:
            self._waiting[conversation_id] = [(draft, future)]
            task = asyncio.create_task(self._drain(conversation_id))
            self._drains.add(task)
            task.add_done_callback(self._drains.discard)
        else:
            waiting.append((draft, future))
        return future

    async def _drain(self, conversation_id: uuid.UUID) -> None:
        batch: Waiting = []
        try:
            while batch := self._waiting[conversation_id]:
                self._waiting[conversation_id] = []
                try:
                    outcomes = await db(services.messages_store)(
                        conversation_id=conversation_id, drafts=[draft for draft, _ in batch]
                    )
                except Exception as exc:
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                else:
                    for (_, future), outcome in zip(batch, outcomes, strict=True):
                        if not future.done():
                            future.set_result(outcome)
        finally:
            # Cancelled (the loop is closing): nobody is left to answer the rest.
            for _, future in [*batch, *self._waiting.pop(conversation_id, [])]:
                future.cancel()


class ReceiptQueue:
    """Records the message.received confirmations of one event loop's sockets, one transaction at a time.

    Confirmations that arrive while a transaction of them is under way wait
    and then share the next one: at chat rates, a commit per socket and
    batch is most of what delivering a message costs.
    """

    def __init__(self) -> None:
        self._waiting: list[tuple[int, set[uuid.UUID], asyncio.Future[int]]] = []
        self._drain_task: asyncio.Task[None] | None = None

    async def mark_delivered(self, user_id: int, message_ids: set[uuid.UUID]) -> int:
        """Record that the user's client holds these messages; return how many changed."""
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._waiting.append((user_id, message_ids, future))
        if self._drain_task is None or self._drain_task.done():
            self._drain_task = asyncio.create_task(self._drain())
        return await asyncio.shield(future)

    async def _drain(self) -> None:
        while batch := self._waiting:
            self._waiting = []
            try:
                changed = await db(services.receipts_mark_delivered)(
                    confirmations=[(user_id, ids) for user_id, ids, _ in batch]
                )
            except Exception as exc:
                for *_, future in batch:
                    if not future.done():
                        future.set_exception(exc)
            else:
                for (*_, future), count in zip(batch, changed, strict=True):
                    if not future.done():
                        future.set_result(count)


_per_loop: dict[tuple[asyncio.AbstractEventLoop, type], object] = {}


def _of_running_loop(kind: type[Q]) -> Q:
    # Futures and tasks belong to one event loop, so each loop has its own queue.
    key = (asyncio.get_running_loop(), kind)
    queue = _per_loop.get(key)
    if not isinstance(queue, kind):
        queue = _per_loop[key] = kind()
    return queue


def receipt_queue() -> ReceiptQueue:
    """Return the receipt queue of the running event loop."""
    return _of_running_loop(ReceiptQueue)


def send_queue() -> ConversationSendQueue:
    """Return the send queue of the running event loop."""
    return _of_running_loop(ConversationSendQueue)
