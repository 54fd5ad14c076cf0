"""Commit what a loop finished: each partition up to its first unfinished record."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from confluent_kafka import Consumer, KafkaError, TopicPartition

from ..records import LOGGER_NAME, position
from .dead_letter import RunOnThread
from .group import Progress

logger = logging.getLogger(LOGGER_NAME)


class Commit:
    """Commit offsets of finished records; after a failure, rewind to the first unfinished one and pause.

    A commit that fails (a rebalance, an outage) only means those records
    come again, so the step does not wait for each one: a round trip per
    batch would cap a loop at a few hundred batches a second. Commits go
    out in order, so a later one covers an earlier one that failed; `join`
    sends the last one and waits for the broker.

    One commit is on its way at a time; what finishes meanwhile waits and
    goes out merged into the next. On a replicated cluster each commit waits
    at the group coordinator until the other replicas hold it, and the
    coordinator serves a connection's requests in order: a commit per batch
    would pile up there ahead of the consumer's heartbeats, seconds deep when
    a broker dies, until the consumer lost its group session.
    """

    def __init__(self, topic: str, run: RunOnThread, *, pause_after_failure: float) -> None:
        self.topic = topic
        self.run = run
        self.pause_after_failure = pause_after_failure
        # The next offset to consume, per partition, of everything handled so far.
        self.finished: dict[tuple[str, int], int] = {}
        # Of those, what waits for the commit on its way to be answered.
        self.unsent: dict[tuple[str, int], int] = {}
        # Commits sent and not answered yet (counted on the consumer's thread, as its callbacks run).
        self.in_flight = 0
        self._consumer: Consumer | None = None

    async def submit(self, consumer: Consumer, progress: Progress, stopping: asyncio.Event) -> None:
        """Commit a handled batch; with a failure, rewind so that it and everything after it comes again."""
        done: dict[tuple[str, int], int] = {}
        unfinished: dict[tuple[str, int], int] = {}
        for msg in progress.pending:
            topic, partition, offset = position(msg)
            if (topic, partition) in unfinished:
                continue
            if (topic, partition, offset) in progress.finished:
                done[topic, partition] = offset + 1
            else:
                unfinished[topic, partition] = offset
        if done:
            await self.commit(consumer, done)
        else:
            await self.flush(consumer)  # what waited for an answer that came meanwhile
        if progress.failed and not stopping.is_set():
            for (topic, partition), offset in unfinished.items():
                await self.run(consumer.seek, TopicPartition(topic, partition, offset))
            await asyncio.sleep(self.pause_after_failure)

    async def join(self, consumer: Consumer) -> None:
        """Commit, and wait for, what was finished in the partitions the consumer still holds."""
        assigned = {(tp.topic, tp.partition) for tp in await self.run(consumer.assignment)}
        if last := {tp: offset for tp, offset in self.finished.items() if tp in assigned}:
            await self.commit(consumer, last, wait=True)

    async def commit(self, consumer: Consumer, done: dict[tuple[str, int], int], *, wait: bool = False) -> None:
        """Commit these next offsets; without waiting for the broker unless asked."""
        self.finished.update(done)
        if not wait:
            self.unsent.update(done)
            await self.flush(consumer)
            return
        for tp in done:
            self.unsent.pop(tp, None)
        offsets = [TopicPartition(topic, partition, offset) for (topic, partition), offset in done.items()]
        try:
            await self.run(lambda: consumer.commit(offsets=offsets, asynchronous=False))
        except Exception as exc:
            self._failed(exc)

    async def flush(self, consumer: Consumer) -> None:
        """Send what waits, unless a commit is still on its way."""
        if consumer is not self._consumer:  # a new consumer: answers to its predecessor's commits no longer count
            self._consumer, self.in_flight = consumer, 0
        if not self.unsent or self.in_flight:
            return
        offsets = [TopicPartition(topic, partition, offset) for (topic, partition), offset in self.unsent.items()]
        self.unsent = {}
        try:
            await self.run(self._send, consumer, offsets)
        except Exception as exc:
            self._failed(exc)

    def _send(self, consumer: Consumer, offsets: list[TopicPartition]) -> None:
        self.in_flight += 1
        try:
            consumer.commit(offsets=offsets, asynchronous=True)
        except Exception:
            self.in_flight -= 1
            raise

    def on_commit(self, err: KafkaError | None, _partitions: list[TopicPartition]) -> None:
        """The Kafka consumer's commit callback: the commit on its way is answered; log one the broker refused."""
        self.in_flight = max(0, self.in_flight - 1)
        if err is not None:
            self._failed(err)

    def _failed(self, error: Any) -> None:
        logger.warning(
            "Commit on %s failed (%s); those records will be redelivered",
            self.topic,
            error,
            extra={"topic": self.topic},
        )
