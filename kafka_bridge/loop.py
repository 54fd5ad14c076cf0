"""The one generic consumer loop that every topic of the bridge runs.

For each topic: a bounded poll (on a thread of its own, never on the event
loop), decode at the edge into the topic's payload type, the topic's handler,
and a manual commit of the offsets only after their records were handled.
A record that cannot be decoded, or that its handler finds it can never
process (`Unprocessable`), is copied to `<topic>.DLT` with the error in its
headers at once; one whose handler still fails after retries with exponential
backoff, after them; either way the loop goes on. Stopping finishes the record in hand, commits
what was finished and closes the consumer.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
import traceback
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition
from django.conf import settings

from . import metrics
from .clients import client_id, consumer_config
from .origin import produced_here
from .payloads import Payload, PayloadError, Unprocessable
from .topics import Topic

logger = logging.getLogger(__name__)

P = TypeVar("P", bound=Payload)

POLL_TIMEOUT_SECONDS = 0.5
POLL_BATCH = 200
DEAD_LETTER_FLUSH_SECONDS = 30.0

# Dead-letter headers: why the record failed, and where it came from.
H_ERROR = "dlt.error"
H_ERROR_TYPE = "dlt.error.type"
H_TOPIC = "dlt.original.topic"
H_PARTITION = "dlt.original.partition"
H_OFFSET = "dlt.original.offset"
H_FAILED_AT = "dlt.failed.at"


def position(msg: Message) -> tuple[str, int, int]:
    """Return the topic, partition and offset of a consumed record (only error events have none)."""
    topic, partition, offset = msg.topic(), msg.partition(), msg.offset()
    if topic is None or partition is None or offset is None:
        raise ValueError(f"not a consumed record: {msg.error()}")
    return topic, partition, offset


def log_fields(msg: Message, payload: Payload | None = None) -> dict[str, Any]:
    """Return a record's place (and its payload's message and conversation, if any) as `extra=` for a log call."""
    fields: dict[str, Any] = {"topic": msg.topic(), "partition": msg.partition(), "offset": msg.offset()}
    for attribute, name in (("message_id", "messageId"), ("conversation_id", "conversationId")):
        if (value := getattr(payload, attribute, None)) is not None:
            fields[name] = value
    return fields


def headers_of(msg: Message) -> list[tuple[str, bytes]]:
    """Return a record's headers as (name, value) pairs; a header without a value has b""."""
    raw = msg.headers() or []
    pairs = raw.items() if isinstance(raw, dict) else raw
    return [(k, v.encode() if isinstance(v, str) else (v or b"")) for k, v in pairs]


@dataclass(frozen=True)
class RecordInfo:
    """Where a record came from, and its headers, for handlers that need them."""

    topic: str
    partition: int
    offset: int
    key: str | None
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, msg: Message) -> RecordInfo:
        key = msg.key()
        topic, partition, offset = position(msg)
        return cls(
            topic=topic,
            partition=partition,
            offset=offset,
            key=key.decode(errors="replace") if isinstance(key, bytes) else key,
            headers={k: v.decode(errors="replace") for k, v in headers_of(msg)},
        )

    @property
    def produced_here(self) -> bool:
        """Whether this service produced the record (else another service did, in the seed's shape)."""
        return produced_here(self.headers)


Handler = Callable[[P, RecordInfo], Awaitable[None]]
# Handles several records of one key at once, in order (for example with one
# round trip for all of them); must be safe to run again for any of them.
BatchHandler = Callable[[list[tuple[P, RecordInfo]]], Awaitable[None]]


@dataclass
class RetryPolicy:
    """Exponential backoff between handler attempts, then the dead-letter topic."""

    attempts: int = 5
    first_delay: float = 0.2
    max_delay: float = 5.0

    def delay(self, attempt: int) -> float:
        return min(self.first_delay * 2 ** (attempt - 1), self.max_delay)


@dataclass
class LoopStats:
    processed: int = 0
    dead_lettered: int = 0
    retries: int = 0


class Stopping(Exception):
    """Raised inside a retry wait when the bridge is asked to stop."""


# How many checks in a row (each `after_seconds` apart) must see records arrive undelivered.
RISING_CHECKS = 3


class StuckWatch:
    """Notices a consumer that is stuck: it polls, but will never deliver again.

    librdkafka can, rarely, keep a consumer's group coordinator connection
    from coming back after a broker restart. The consumer still polls, and
    nothing inside the client gets it out. Two ways it shows:

    - it still holds its partitions but fetches nothing: the high watermarks
      of those partitions rise through RISING_CHECKS checks in a row,
      `after_seconds` apart, without a record delivered (a healthy consumer
      delivers within milliseconds);
    - its session timed out during the outage and it cannot rejoin: its
      statistics have not shown it a steady member of its group for
      `3 * after_seconds` while the broker answers.

    Either way the loop replaces the consumer (its partitions go to the new
    one, or to another bridge); records are never skipped, only delivered
    again. A consumer that holds no partition because others hold them all
    is a steady member, and is left alone.
    """

    def __init__(self, after_seconds: float) -> None:
        self.after_seconds = after_seconds
        self.new_consumer()

    def new_consumer(self) -> Callable[[str], None]:
        """Start watching a new consumer; return the statistics callback that tells its group state."""
        self.progressed()
        self._steady_at = time.monotonic()
        return self._statistics

    def _statistics(self, stats_json: str) -> None:
        try:
            join_state = (json.loads(stats_json).get("cgrp") or {}).get("join_state")
        except (ValueError, AttributeError):
            return
        if join_state == "steady":
            self._steady_at = time.monotonic()

    def progressed(self) -> None:
        """The consumer delivered records: start watching afresh."""
        self._since = time.monotonic()
        self._seen: tuple[frozenset[tuple[str, int]], int] | None = None
        self._rising = 0
        self._answering_since: float | None = None

    def stuck(self, consumer: Consumer) -> str | None:
        """Return why the consumer is stuck, or None; called after a poll that delivered nothing (on its thread)."""
        now = time.monotonic()
        if now - self._since < self.after_seconds:
            return None
        self._since = now
        partitions = consumer.assignment()
        try:
            if not partitions:
                consumer.list_topics(timeout=2.0)  # the broker answers: the consumer could rejoin
            else:
                # Asks each partition's leader, not the group coordinator.
                high = sum(consumer.get_watermark_offsets(tp, timeout=2.0)[1] for tp in partitions)
        except KafkaException:
            # The broker does not answer: nobody could fetch or rejoin; start again once it does.
            self._seen = self._answering_since = None
            return None
        if self._answering_since is None:
            self._answering_since = now
        if not partitions:
            unjoined = now - max(self._steady_at, self._answering_since)
            if unjoined > 3 * self.after_seconds:
                return f"not back in its group for {unjoined:.0f}s while the broker answers"
            return None
        seen = (frozenset((tp.topic, tp.partition) for tp in partitions), high)
        previous, self._seen = self._seen, seen
        if previous is not None and previous[0] == seen[0] and high > previous[1]:
            self._rising += 1
        else:
            self._rising = 0
        if self._rising >= RISING_CHECKS:
            waited = RISING_CHECKS * self.after_seconds
            return f"delivered nothing for {waited:.0f}s while records kept arriving in its partitions"
        return None


def _close_in_background(consumer: Consumer) -> None:
    """Close a consumer without waiting: a stuck one may take long to leave its group."""

    def close() -> None:
        try:
            consumer.close()
        except Exception as exc:
            logger.warning("Closing a replaced consumer failed: %s", exc)

    threading.Thread(target=close, name="kafka-close-replaced", daemon=True).start()


class TopicLoop(Generic[P]):
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
    ) -> None:
        self.topic = topic
        # Names the loop in its consumer's client id; two loops may read one topic.
        self.name = name or topic.name
        self.handler = handler
        self.batch_handler = batch_handler
        self.dead_letter_producer = dead_letter_producer
        self.group_id = group_id
        self.retry = retry or RetryPolicy()
        self.stats = LoopStats()
        # For readiness (bridge_http.py): when the last poll returned, and the
        # partitions the group gave this consumer (set by its rebalance callbacks).
        self.last_poll: float | None = None
        self.assignment: set[tuple[str, int]] = set()
        self.stopped = False
        # The loop's current consumer (replaced when stuck; see StuckWatch).
        self.consumer: Consumer | None = None
        # The next offset to consume, per partition, of everything handled so far.
        self._finished: dict[tuple[str, int], int] = {}
        # One thread owns the consumer: librdkafka calls must not run on the event loop.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"kafka-{topic.name}")

    async def _call(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    async def run(self, stopping: asyncio.Event) -> None:
        """Poll, handle and commit until asked to stop; always close the consumer."""
        config = consumer_config(self.group_id)
        lag = metrics.LagFromStatistics(config["group.id"], self.topic.name)
        watch = StuckWatch(settings.KAFKA_STUCK_CONSUMER_SECONDS)
        consumer = await self._subscribe(config, lag, watch)
        logger.info("Consuming %s as group %s", self.topic.name, config["group.id"])
        try:
            while not stopping.is_set():
                messages = await self._call(self._fetch, consumer)
                self.last_poll = time.monotonic()
                if messages:
                    watch.progressed()
                elif reason := await self._call(watch.stuck, consumer):
                    logger.warning(
                        "Consumer of %s %s; replacing it", self.topic.name, reason, extra={"topic": self.topic.name}
                    )
                    metrics.record_consumer_restart(self.name, self.topic.name)
                    _close_in_background(consumer)
                    self.assignment = set()
                    consumer = await self._subscribe(config, lag, watch)
                    continue
                await self._handle_batch(consumer, messages, stopping)
        finally:
            self.stopped = True
            lag.forget()
            # The commits on the way were sent without waiting; the last one waits for the broker.
            assigned = {(tp.topic, tp.partition) for tp in await self._call(consumer.assignment)}
            if last := {tp: offset for tp, offset in self._finished.items() if tp in assigned}:
                await self._commit(consumer, last, wait=True)
            await self._call(consumer.close)
            self._executor.shutdown(wait=False)
            logger.info("Stopped consuming %s as group %s (%s)", self.topic.name, self.group_id, self.stats)

    async def _subscribe(self, config: dict[str, Any], lag: metrics.LagFromStatistics, watch: StuckWatch) -> Consumer:
        group_state = watch.new_consumer()

        def statistics(stats_json: str) -> None:
            lag(stats_json)
            group_state(stats_json)

        consumer = Consumer(
            {
                **config,
                "client.id": client_id(self.name),
                "error_cb": self._log_error,
                "on_commit": self._on_commit,
                "statistics.interval.ms": metrics.STATISTICS_INTERVAL_MS,
                "stats_cb": statistics,
            }
        )
        await self._call(
            lambda: consumer.subscribe(
                [self.topic.name], on_assign=self._on_assign, on_revoke=self._on_revoke, on_lost=self._on_revoke
            )
        )
        self.consumer = consumer
        return consumer

    def _on_assign(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        # Rebalance callbacks run inside consume(), on the consumer's thread.
        self.assignment |= {(tp.topic, tp.partition) for tp in partitions}

    def _on_revoke(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self.assignment -= {(tp.topic, tp.partition) for tp in partitions}

    def readiness(self, now: float, max_poll_gap: float) -> str | None:
        """Return why this loop is not ready (no recent poll, no partitions), or None when it is."""
        if self.stopped:
            return "stopped"
        if self.last_poll is None:
            return "has not polled yet"
        if now - self.last_poll > max_poll_gap:
            return f"has not polled for {now - self.last_poll:.0f}s"
        if not self.assignment:
            return "holds no partition (not joined, or more consumers than partitions)"
        return None

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

    async def _handle_batch(self, consumer: Consumer, messages: list[Message], stopping: asyncio.Event) -> None:
        """Handle a polled batch, then commit what was finished.

        Records of one key (one conversation, one user) are handled in order,
        one after another; different keys are handled concurrently, so one
        slow key or round trip does not hold up the others.
        """
        for msg in messages:
            if msg.error():
                logger.warning(
                    "Consumer error on %s: %s", self.topic.name, msg.error(), extra={"topic": self.topic.name}
                )
        pending = [m for m in messages if not m.error()]
        chains: dict[tuple[int, str | bytes | None], list[Message]] = {}
        for msg in pending:
            chains.setdefault((position(msg)[1], msg.key()), []).append(msg)
        finished: set[tuple[str, int, int]] = set()
        failed = asyncio.Event()

        async def handle_chain(chain: list[Message]) -> None:
            if len(chain) > 1 and self.batch_handler is not None and await self._process_together(chain):
                finished.update(position(msg) for msg in chain)
                return
            for msg in chain:
                if stopping.is_set() or failed.is_set():
                    return  # the rest is redelivered to whoever consumes next
                try:
                    await self._process(msg, stopping)
                except Stopping:
                    return
                except Exception:
                    # Neither handled nor parked (the broker refused the dead letter).
                    logger.exception(
                        "Could not finish %s@%s/%s", msg.topic(), msg.partition(), msg.offset(), extra=log_fields(msg)
                    )
                    failed.set()
                    return
                finished.add(position(msg))

        await asyncio.gather(*(handle_chain(chain) for chain in chains.values()))

        # Commit each partition up to its first unfinished record; with a failure,
        # rewind there so that it and everything after it comes again.
        done: dict[tuple[str, int], int] = {}
        unfinished: dict[tuple[str, int], int] = {}
        for msg in pending:
            topic, partition, offset = position(msg)
            if (topic, partition) in unfinished:
                continue
            if (topic, partition, offset) in finished:
                done[topic, partition] = offset + 1
            else:
                unfinished[topic, partition] = offset
        if done:
            await self._commit(consumer, done)
        if failed.is_set() and not stopping.is_set():
            for (topic, partition), offset in unfinished.items():
                await self._call(consumer.seek, TopicPartition(topic, partition, offset))
            await asyncio.sleep(self.retry.max_delay)

    async def _commit(self, consumer: Consumer, done: dict[tuple[str, int], int], *, wait: bool = False) -> None:
        """Commit offsets of finished records; without waiting for the broker unless asked.

        A commit that fails (a rebalance, an outage) only means those records
        come again, so the loop does not wait for each one: a round trip per
        batch would cap a loop at a few hundred batches a second. Commits go
        out in order, so a later one covers an earlier one that failed.
        """
        self._finished.update(done)
        offsets = [TopicPartition(topic, partition, offset) for (topic, partition), offset in done.items()]
        try:
            if wait:
                await self._call(lambda: consumer.commit(offsets=offsets, asynchronous=False))
            else:
                await self._call(lambda: consumer.commit(offsets=offsets, asynchronous=True))
        except Exception as exc:
            logger.warning(
                "Commit on %s failed (%s); those records will be redelivered",
                self.topic.name,
                exc,
                extra={"topic": self.topic.name},
            )

    def _on_commit(self, err: KafkaError | None, partitions: list[TopicPartition]) -> None:
        if err is not None:
            logger.warning(
                "Commit on %s failed (%s); those records will be redelivered",
                self.topic.name,
                err,
                extra={"topic": self.topic.name},
            )

    async def _process_together(self, chain: list[Message]) -> bool:
        """Handle one key's records with one call of the batch handler; False when they must go one by one."""
        assert self.batch_handler is not None
        items: list[tuple[P, RecordInfo]] = []
        for msg in chain:
            try:
                items.append((self.topic.payload.decode(msg.value()), RecordInfo.of(msg)))
            except PayloadError:
                return False  # one by one: it goes to the dead-letter topic, the rest after it
        started = time.perf_counter()
        try:
            await self.batch_handler(items)
        except Exception as exc:
            # One by one, with retries and the dead-letter topic; those already done are done again.
            logger.warning(
                "Batch of %d records on %s failed (%s); handling them one by one",
                len(items),
                self.topic.name,
                exc,
                extra={"topic": self.topic.name},
            )
            return False
        self.stats.processed += len(items)
        metrics.record_handled(self.name, self.topic.name, time.perf_counter() - started, len(items))
        return True

    async def _process(self, msg: Message, stopping: asyncio.Event) -> None:
        info = RecordInfo.of(msg)
        started = time.perf_counter()
        try:
            payload = self.topic.payload.decode(msg.value())
        except PayloadError as exc:
            await self._dead_letter(msg, exc)
            metrics.record_dead_lettered(self.name, self.topic.name, time.perf_counter() - started)
            return
        attempt = 1
        while True:
            try:
                await self.handler(payload, info)
                self.stats.processed += 1
                metrics.record_handled(self.name, self.topic.name, time.perf_counter() - started)
                return
            except Unprocessable as exc:
                # Retrying cannot help: the reason is in the record itself.
                await self._dead_letter(msg, exc)
                metrics.record_dead_lettered(self.name, self.topic.name, time.perf_counter() - started)
                return
            except Exception as exc:
                if attempt >= self.retry.attempts:
                    await self._dead_letter(msg, exc, payload)
                    metrics.record_dead_lettered(self.name, self.topic.name, time.perf_counter() - started)
                    return
                delay = self.retry.delay(attempt)
                logger.warning(
                    "Handler for %s@%s/%s failed (attempt %d): %s; retrying in %.1fs",
                    info.topic,
                    info.partition,
                    info.offset,
                    attempt,
                    exc,
                    delay,
                    extra=log_fields(msg, payload),
                )
                self.stats.retries += 1
                metrics.record_retried(self.name, self.topic.name)
                attempt += 1
                try:
                    await asyncio.wait_for(stopping.wait(), delay)
                    raise Stopping
                except TimeoutError:
                    pass

    async def _dead_letter(self, msg: Message, exc: BaseException, payload: P | None = None) -> None:
        """Copy a record to the dead-letter topic and wait until the broker has it."""
        error = "".join(traceback.format_exception_only(type(exc), exc)).strip()
        logger.error(
            "Dead-lettering %s@%s/%s: %s",
            msg.topic(),
            msg.partition(),
            msg.offset(),
            error,
            extra=log_fields(msg, payload),
        )
        topic, partition, offset = position(msg)
        headers: list[tuple[str, str | bytes | None]] = [
            *headers_of(msg),
            (H_ERROR, error[:4000].encode()),
            (H_ERROR_TYPE, type(exc).__name__.encode()),
            (H_TOPIC, topic.encode()),
            (H_PARTITION, str(partition).encode()),
            (H_OFFSET, str(offset).encode()),
            (H_FAILED_AT, str(int(time.time() * 1000)).encode()),
        ]
        outcome: list[KafkaError | None] = []

        def delivered(err: KafkaError | None, _msg: Message) -> None:
            outcome.append(err)
            if err is not None:
                metrics.producer_error()

        def produce_and_flush() -> None:
            self.dead_letter_producer.produce(
                self.topic.dead_letter, key=msg.key(), value=msg.value(), headers=headers, on_delivery=delivered
            )
            self.dead_letter_producer.flush(DEAD_LETTER_FLUSH_SECONDS)

        await self._call(produce_and_flush)
        if not outcome or outcome[0] is not None:
            # Not safe to commit past a record that is neither handled nor parked.
            raise RuntimeError(f"could not dead-letter {msg.topic()}@{msg.partition()}/{msg.offset()}")
        self.stats.dead_lettered += 1

    def _log_error(self, error: KafkaError) -> None:
        logger.warning("Kafka consumer error on %s: %s", self.topic.name, error, extra={"topic": self.topic.name})
