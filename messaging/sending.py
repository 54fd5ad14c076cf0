"""Group commit for a busy conversation: sends that queue behind its row lock share one commit.

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

from chat_project.db import db

from . import services
from .services import Draft, SendOutcome

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


_queues: dict[asyncio.AbstractEventLoop, ConversationSendQueue] = {}


def send_queue() -> ConversationSendQueue:
    """Return the send queue of the running event loop."""
    loop = asyncio.get_running_loop()
    queue = _queues.get(loop)
    if queue is None:
        queue = _queues[loop] = ConversationSendQueue()
    return queue
