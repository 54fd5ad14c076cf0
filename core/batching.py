"""Many small requests of one event loop, served together in one call.

A reconnect storm opens thousands of sockets within seconds, and each one
looks up its token, subscribes to its channels, marks its presence and asks
whether anything is pending. One round trip (and, for the database, one
thread hop and one compiled query) each caps a process at a few hundred
sockets a second; served in batches, the same work costs a few round trips.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

logger = logging.getLogger(__name__)

K = TypeVar("K", bound=Hashable)
T = TypeVar("T")
R = TypeVar("R")


def _consume_exception(future: asyncio.Future) -> None:
    # A fire-and-forget item's batch may have no one awaiting it; the failure is logged when it happens.
    if not future.cancelled():
        future.exception()


class Coalescer(Generic[T, R]):
    """Serve the items added during one event-loop turn with one call of `serve`, in the order added.

    While one batch is being served, new items collect into the next, so
    batches grow with the load, and items reach `serve` in the order they
    were added. Every item of a batch gets the call's result (or its
    exception). Belongs to one event loop.
    """

    def __init__(self, serve: Callable[[list[T]], Awaitable[R]], name: str) -> None:
        self._serve = serve
        self._name = name
        self._items: list[T] = []
        self._batch: asyncio.Future[R] | None = None
        self._server: asyncio.Task[None] | None = None

    def add(self, item: T) -> asyncio.Future[R]:
        """Queue an item; return the future result of the batch it joins."""
        if self._batch is None:
            self._batch = asyncio.get_running_loop().create_future()
            self._batch.add_done_callback(_consume_exception)
        self._items.append(item)
        if self._server is None or self._server.done():
            # Starts on the next loop turn, after every caller ready in this one has added its item.
            self._server = asyncio.ensure_future(self._run())
        return self._batch

    async def submit(self, item: T) -> R:
        """Queue an item and return its batch's result; the batch goes on if the caller is cancelled."""
        return await asyncio.shield(self.add(item))

    async def _run(self) -> None:
        while self._batch is not None:
            batch, items = self._batch, self._items
            self._batch, self._items = None, []
            try:
                result = await self._serve(items)
            except asyncio.CancelledError:  # the loop is shutting down: nobody waits for ever
                batch.cancel()
                if self._batch is not None:
                    self._batch.cancel()
                raise
            except Exception as exc:
                logger.warning("Serving %d %s failed", len(items), self._name, exc_info=True)
                batch.set_exception(exc)
            else:
                batch.set_result(result)


class KeyedQueue(Generic[K, T, R]):
    """Serve each key's items in the order added, one call of `serve(key, items)` at a time per key.

    Items of a key that arrive while a call for that key is under way wait,
    then go together in the next call; a quiet key's item goes at once,
    alone. `serve` returns one result per item, in order; a failed call
    fails its items only. Belongs to one event loop.
    """

    def __init__(self, serve: Callable[[K, list[T]], Awaitable[list[R]]]) -> None:
        self._serve = serve
        self._waiting: dict[K, list[tuple[T, asyncio.Future[R]]]] = {}
        self._drains: set[asyncio.Task[None]] = set()

    def add(self, key: K, item: T) -> asyncio.Future[R]:
        """Queue an item behind the earlier ones of its key; return the future of its result."""
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        waiting = self._waiting.get(key)
        if waiting is None:
            self._waiting[key] = [(item, future)]
            task = asyncio.create_task(self._drain(key))
            self._drains.add(task)
            task.add_done_callback(self._drains.discard)
        else:
            waiting.append((item, future))
        return future

    async def _drain(self, key: K) -> None:
        batch: list[tuple[T, asyncio.Future[R]]] = []
        try:
            while batch := self._waiting[key]:
                self._waiting[key] = []
                try:
                    results = await self._serve(key, [item for item, _ in batch])
                except Exception as exc:
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                else:
                    for (_, future), result in zip(batch, results, strict=True):
                        if not future.done():
                            future.set_result(result)
        finally:
            # Cancelled (the loop is closing): nobody is left to answer the rest.
            for _, future in [*batch, *self._waiting.pop(key, [])]:
                future.cancel()


class PerLoop(Generic[T]):
    """One instance of something for each event loop (connection pools and batches belong to one loop)."""

    def __init__(self, factory: Callable[[], T]) -> None:
        self._factory = factory
        self._by_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, T] = weakref.WeakKeyDictionary()

    def get(self) -> T:
        """Return the running loop's instance, made on first use."""
        loop = asyncio.get_running_loop()
        instance = self._by_loop.get(loop)
        if instance is None:
            instance = self._by_loop[loop] = self._factory()
        return instance
