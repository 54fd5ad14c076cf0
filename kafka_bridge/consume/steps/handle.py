"""Run the handlers: a key's records together through the batch handler, or one record at a time."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Generic

from confluent_kafka import Message

from ...payloads import PayloadError, Unprocessable
from ..records import LOGGER_NAME, BatchHandler, P, RecordInfo
from .counting import Counts
from .dead_letter import DeadLetter
from .decode import Decode
from .retry import Retry, Stopping

logger = logging.getLogger(LOGGER_NAME)


class ProcessRecord(Generic[P]):
    """One record: decode it, run its handler with retries, and dead-letter it when that cannot succeed.

    Raises `Stopping` when the bridge stops during a retry wait, and whatever
    keeps the record from being parked (the broker refused the dead letter).
    """

    def __init__(
        self,
        decode: Decode[P],
        retry: Retry[P],
        dead_letter: DeadLetter,
        counts: Counts,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.decode = decode
        self.retry = retry
        self.dead_letter = dead_letter
        self.counts = counts
        self.clock = clock

    async def submit(self, msg: Message, stopping: asyncio.Event) -> None:
        """Handle or park one record."""
        started = self.clock()
        try:
            payload, info = self.decode.submit(msg)
        except PayloadError as exc:
            await self.dead_letter.submit(msg, exc)
            self.counts.dead_lettered(self.clock() - started)
            return
        try:
            await self.retry.submit(payload, info, msg, stopping)
        except Stopping:
            raise
        except Unprocessable as exc:
            # Retrying cannot help: the reason is in the record itself.
            await self.dead_letter.submit(msg, exc)
        except Exception as exc:
            await self.dead_letter.submit(msg, exc, payload)
        else:
            self.counts.handled(self.clock() - started)
            return
        self.counts.dead_lettered(self.clock() - started)


class RunTogether(Generic[P]):
    """One key's records with one call of the batch handler; False when they must go one by one."""

    def __init__(
        self,
        decode: Decode[P],
        batch_handler: BatchHandler[P],
        counts: Counts,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.decode = decode
        self.batch_handler = batch_handler
        self.counts = counts
        self.clock = clock

    async def submit(self, chain: list[Message]) -> bool:
        """Handle the records in one call; return whether that succeeded."""
        items: list[tuple[P, RecordInfo]] = []
        for msg in chain:
            try:
                items.append(self.decode.submit(msg))
            except PayloadError:
                return False  # one by one: it goes to the dead-letter topic, the rest after it
        started = self.clock()
        try:
            await self.batch_handler(items)
        except Exception as exc:
            # One by one, with retries and the dead-letter topic; those already done are done again.
            logger.warning(
                "Batch of %d records on %s failed (%s); handling them one by one",
                len(items),
                self.counts.topic,
                exc,
                extra={"topic": self.counts.topic},
            )
            return False
        self.counts.handled(self.clock() - started, len(items))
        return True
