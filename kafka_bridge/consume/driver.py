"""The driver of a loop: one topic, one handler, one Kafka consumer, until the bridge stops.

It owns what touches the Kafka consumer: the poll thread (librdkafka calls
never run on the event loop), the subscription and its rebalance callbacks,
replacing a consumer that is stuck, and the commits. Each polled batch goes
through the steps (steps/): decode at the edge into the topic's payload
type, the batch handler for a key's records or the handler for each record,
retries with exponential backoff, the dead-letter topic `<topic>.DLT` for a
record that cannot be decoded, that its handler finds it can never process
(`Unprocessable`) or that still fails after its retries; then a manual
commit of the offsets of what was finished. Either way the loop goes on.
Stopping finishes the record in hand, commits what was finished, leaves
the group and closes the consumer.

Each loop's consumer is a static member of its group (`group.instance.id`,
KIP-345), under an id of its own per loop and process. A consumer whose
session ran out while the broker was away (a restart, an outage) rejoins
as the same member at once: a dynamic one would wait, in a rebalance, for
the broker to time out the member it was before (`session.timeout.ms`
after the group is loaded), and live delivery with it. A consumer whose
session ran out is replaced by a new one under the same id (`_unusable`),
which is what rejoins; so is one stuck. A static member does not leave on
close, so stopping leaves first (`_leave`): its partitions go to the other
bridges at once, not a session later.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Generic

from confluent_kafka import Consumer, KafkaError, Message, Producer, TopicPartition
from django.conf import settings

from .. import metrics
from ..produce.clients import client_id, consumer_config
from ..topics import Topic
from .records import LOGGER_NAME, BatchHandler, Handler, P
from .steps.commit import Commit
from .steps.counting import Counts
from .steps.dead_letter import DeadLetter
from .steps.decode import Decode
from .steps.group import GroupByKey
from .steps.handle import ProcessRecord, RunTogether
from .steps.retry import Retry, RetryPolicy
from .watchers import Clock, ReadinessWatch, StuckWatch

logger = logging.getLogger(LOGGER_NAME)

POLL_TIMEOUT_SECONDS = 0.5
POLL_BATCH = 200
# How long stopping waits for the group to take the partitions back before closing.
LEAVE_SECONDS = 2.0


def _close_in_background(consumer: Consumer) -> None:
    """Close a consumer without waiting: a stuck one may take long to leave its group."""

    def close() -> None:
        try:
            consumer.close()
        except Exception as exc:
            logger.warning("Closing a replaced consumer failed: %s", exc)

    threading.Thread(target=close, name="kafka-close-replaced", daemon=True).start()


class LoopDriver(Generic[P]):
    """Consume one topic with one handler until `stopping` is set."""

    def __init__(
        self,
        topic: Topic[P],
        handler: Handler[P],
        *,
        dead_letter_producer: Producer,
        group_id: str | None = None,
        retry: RetryPolicy | None = None,
        batch_handler: BatchHandler[P] | None = None,
        name: str | None = None,
        clock: Clock = time.monotonic,
    ) -> None:
        self.topic = topic
        # Names the loop in its consumer's client id; two loops may read one topic.
        self.name = name or topic.name
        self.group_id = group_id
        self.retry = retry or RetryPolicy()
        self.clock = clock
        self.counts = Counts(self.name, topic.name)
        # For readiness (probes.py): when it last polled, which partitions it holds.
        self.readiness = ReadinessWatch(clock)
        # The loop's current Kafka consumer (replaced when stuck; see StuckWatch).
        self.consumer: Consumer | None = None
        # Its static member id, kept by a replacement; unique to this process.
        self.instance_id = f"{client_id(self.name)}-{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        # Set by the rebalance callback when the consumer's session ran out.
        self._session_lost = False
        # One thread owns the consumer: librdkafka calls must not run on the event loop.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"kafka-{topic.name}")
        decode = Decode(topic.payload)
        dead_letter = DeadLetter(dead_letter_producer, topic.dead_letter, self._call)
        process = ProcessRecord(decode, Retry(handler, self.retry, self.counts), dead_letter, self.counts)
        together = RunTogether(decode, batch_handler, self.counts) if batch_handler is not None else None
        self._group = GroupByKey(topic.name, process, together)
        self._commit = Commit(topic.name, self._call, pause_after_failure=self.retry.max_delay)

    async def _call(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    async def run(self, stopping: asyncio.Event) -> None:
        """Poll, handle and commit until asked to stop; always close the consumer."""
        config = consumer_config(self.group_id)
        lag = metrics.LagFromStatistics(config["group.id"], self.topic.name)
        watch = StuckWatch(settings.KAFKA_STUCK_CONSUMER_SECONDS, self.clock)
        consumer = await self._subscribe(config, lag, watch)
        logger.info("Consuming %s as group %s", self.topic.name, config["group.id"])
        try:
            while not stopping.is_set():
                messages = await self._call(self._fetch, consumer)
                self.readiness.polled()
                reason = self._unusable(messages)
                if reason is None and messages:
                    watch.progressed()
                elif reason is None:
                    reason = await self._call(watch.stuck, consumer)
                if reason is not None:
                    # What it fetched is not handled: it comes again to the consumer that follows.
                    logger.warning(
                        "Consumer of %s %s; replacing it", self.topic.name, reason, extra={"topic": self.topic.name}
                    )
                    metrics.record_consumer_restart(self.name, self.topic.name)
                    _close_in_background(consumer)
                    self.readiness.assignment = set()
                    consumer = await self._subscribe(config, lag, watch)
                    continue
                progress = await self._group.submit(messages, stopping)
                await self._commit.submit(consumer, progress, stopping)
        finally:
            self.readiness.stopped = True
            lag.forget()
            # The commits on the way were sent without waiting; the last one waits for the broker.
            await self._commit.join(consumer)
            await self._call(self._leave, consumer)
            await self._call(consumer.close)
            self._executor.shutdown(wait=False)
            logger.info("Stopped consuming %s as group %s (%s)", self.topic.name, self.group_id, self.counts.stats)

    def _unusable(self, messages: list[Message]) -> str | None:
        """Return why the consumer must be replaced at once, or None.

        A consumer whose session ran out (a broker outage) still holds the
        commits it sent before, and librdkafka sends them again under the
        static id when the broker is back, before rejoining: the broker then
        fences the consumer for good. A new one rejoins cleanly, and as the
        same static member at once. One that failed for good is replaced too.
        """
        if self._session_lost:
            return "lost its group session (the broker was away)"
        for msg in messages:
            error = msg.error()
            if error is not None and error.fatal():
                return f"failed for good ({error.str()})"
        return None

    async def _subscribe(self, config: dict[str, Any], lag: metrics.LagFromStatistics, watch: StuckWatch) -> Consumer:
        group_state = watch.new_consumer()
        self._session_lost = False

        def statistics(stats_json: str) -> None:
            lag(stats_json)
            group_state(stats_json)

        consumer = Consumer(
            {
                **config,
                "client.id": client_id(self.name),
                "group.instance.id": self.instance_id,
                "error_cb": self._log_error,
                "on_commit": self._commit.on_commit,
                "statistics.interval.ms": metrics.STATISTICS_INTERVAL_MS,
                "stats_cb": statistics,
            }
        )
        # Rebalance callbacks run inside consume(), on the consumer's thread.
        await self._call(
            lambda: consumer.subscribe(
                [self.topic.name],
                on_assign=self._assigned,
                on_revoke=lambda _c, partitions: self.readiness.revoked(partitions),
                on_lost=self._lost,
            )
        )
        self.consumer = consumer
        return consumer

    @staticmethod
    def _fetch(consumer: Consumer) -> list[Message]:
        """Wait (bounded) for one record, then take whatever else is already there.

        consume(n, timeout) waits the whole timeout unless n records arrive,
        which would add up to the timeout to every message's latency.
        """
        first = consumer.consume(1, POLL_TIMEOUT_SECONDS)
        if not first:
            return first
        return first + consumer.consume(POLL_BATCH - 1, 0)

    def _assigned(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self.readiness.assigned(partitions)
        logger.info(
            "Loop %s holds %s",
            self.name,
            ", ".join(f"{tp.topic}[{tp.partition}]" for tp in partitions) or "no partition",
            extra={"topic": self.topic.name},
        )

    def _lost(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        # Its session ran out (a broker outage): the run loop replaces it (see _unusable).
        self.readiness.revoked(partitions)
        self._session_lost = True

    @staticmethod
    def _leave(consumer: Consumer) -> None:
        """Leave the group: a static member that only closes keeps its partitions until its session ends.

        What is polled meanwhile is not handled (nor committed): the next owner gets it.
        """
        try:
            consumer.unsubscribe()
            deadline = time.monotonic() + LEAVE_SECONDS
            # The revocation runs inside a poll; the group hears of the leave once it has.
            while consumer.assignment() and time.monotonic() < deadline:
                consumer.consume(1, 0.05)
        except Exception as exc:  # closing goes on; the partitions move after the session
            logger.warning("Leaving the group failed: %s", exc)

    def _log_error(self, error: KafkaError) -> None:
        logger.warning("Kafka consumer error on %s: %s", self.topic.name, error, extra={"topic": self.topic.name})
