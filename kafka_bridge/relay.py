"""The outbox relay: gets committed outbox records to Kafka, fast and in order.

Publishing is done by the process that committed the records, right after
its commit (`publish`): no lock, no extra query, the broker round trip
overlaps the next sends. The outbox row is the safety net: it is deleted
only after the broker acknowledged the record, so a record whose process
died first is still there, and the sweep sends it.

Every long-running process (web, bridge) starts one relay thread from its
entry point; nothing else starts it, so a commit in a one-off command
starts no thread. It serves
the producer's delivery reports, deletes acknowledged records in batches,
and twice a second sweeps the outbox for records older than
OUTBOX_SWEEP_AFTER_SECONDS (left by a process that died, or by one that
does not relay) under a deployment-wide lock, so that only one relay sweeps
at a time.

Order. The key keeps one conversation in one partition, and a producer
appends to a partition in the order it was given records. One conversation's
commits are serialized by its row lock, so they reach `publish` in seq
order, and a producer that never gives up on a record while its process
lives (`message.timeout.ms` 0) keeps that order through broker outages. A
record sent twice (its process died after the broker took it, or a sweep
raced the committing process) arrives twice; consumers and clients drop
repeats by id, and as every copy travels in order, the first copies still
arrive in order.

When this process's producer cannot take a record (its queue is full after a
long outage) or reports one failed (an error no retry cures), the relay
pauses direct publishing: the records it could not get out, and those its
process commits meanwhile, go with the relay's own sweep, in id order, once
the producer's queue has drained; direct publishing resumes when none are
left.
"""

from __future__ import annotations

import atexit
import contextlib
import enum
import fcntl
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from datetime import timedelta
from functools import partial
from pathlib import Path

from confluent_kafka import KafkaError, Message, Producer
from django.conf import settings
from django.db import close_old_connections, connection, transaction
from django.utils import timezone

from core.logs import set_thread_role

from .clients import relay_producer
from .metrics import producer_error
from .models import OutboxRecord
from .origin import OWN_HEADERS

logger = logging.getLogger(__name__)

SWEEP_BATCH_SIZE = 500
SWEEP_INTERVAL_SECONDS = 0.5
# How long the relay thread waits for delivery reports before looking at the clock again.
POLL_SECONDS = 0.05
# Acknowledged records are deleted in one statement per batch, at most this often...
DELETE_INTERVAL_SECONDS = 0.05
# ...or as soon as this many are waiting.
DELETE_BATCH_SIZE = 1000
MAX_BACKOFF_SECONDS = 5.0
# How long a sweep waits for the broker to acknowledge what it produced.
SWEEP_FLUSH_SECONDS = 10.0
# How long stopping waits for the broker to acknowledge what is in flight.
STOP_FLUSH_SECONDS = 10.0
# Any constant shared by all relays; it names the lock in pg_locks.
PG_LOCK_KEY = 7_226_001
# Ids of records left to the sweep that a paused relay remembers; the rest waits for the age-based sweep.
MAX_UNSENT_TRACKED = 1_000_000


class FatalProducerError(Exception):
    """The producer hit an error it cannot recover from (librdkafka says fatal); a new one is needed."""


class Outcome(enum.Enum):
    SENT = "sent"  # a batch went out; look again at once
    IDLE = "idle"  # nothing to send
    BUSY = "busy"  # another relay holds the lock
    FAILED = "failed"  # the broker did not take the batch


@contextlib.contextmanager
def relay_lock() -> Iterator[bool]:
    """Hold the cross-process sweep lock if it is free; yield whether it was taken."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_try_advisory_lock(%s)", [PG_LOCK_KEY])
            (taken,) = cursor.fetchone()
        try:
            yield taken
        finally:
            if taken:
                with connection.cursor() as cursor:
                    cursor.execute("SELECT pg_advisory_unlock(%s)", [PG_LOCK_KEY])
    elif connection.vendor == "sqlite" and not connection.is_in_memory_db():  # type: ignore[attr-defined]  # SQLite's wrapper has it
        # SQLite lives on one machine, so a file lock beside it is enough.
        path = Path(str(settings.DATABASES["default"]["NAME"]) + ".relay.lock")
        with path.open("a") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                yield False
                return
            try:
                yield True
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
    else:
        yield True


class OutboxRelay:
    """Publishes this process's commits at once, deletes what the broker took, and sweeps what others left."""

    def __init__(self, producer_factory: Callable[[], Producer] = relay_producer) -> None:
        self._producer_factory = producer_factory
        self._producer: Producer | None = None
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self._exit_hook = False
        # Held while choosing between publishing directly and leaving records to the sweep.
        self._mode_lock = threading.Lock()
        self._paused = False
        # Ids of this process's records that must go again (or for the first time) while paused.
        self._unsent: set[int] = set()
        self._acked: list[int] = []
        self._fatal: str | None = None

    ### Lifecycle ###

    def start(self) -> None:
        """Start the thread if it is not running yet."""
        with self._start_lock:
            if self._thread is None or not self._thread.is_alive():
                self._stopping.clear()
                self._producer = self._producer or self._producer_factory()
                self._thread = threading.Thread(target=self._run, name="outbox-relay", daemon=True)
                self._thread.start()
                # Wait for the broker's verdict on what is in flight before the
                # process exits, so that a record it took is not sent again.
                if not self._exit_hook:
                    atexit.register(self.stop, 5.0)
                    self._exit_hook = True

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive() and not self._stopping.is_set()

    @property
    def paused(self) -> bool:
        """Whether direct publishing is paused (records go through the sweep)."""
        return self._paused

    def stop(self, timeout: float = 20.0) -> None:
        """Flush what is in flight, delete what the broker took, and stop the thread."""
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)

    ### Publishing ###

    def publish(self, records: list[OutboxRecord]) -> None:
        """Produce committed records now (called right after their commit, on any thread)."""
        with self._mode_lock:
            producer = self._producer
            if producer is None or not self.running:
                return  # a relay that does not run publishes nothing; the sweep of others does
            if self._paused:
                self._leave_to_sweep(r.id for r in records)
                return
            for index, record in enumerate(records):
                try:
                    self._produce(producer, record)
                except BufferError:
                    # The queue is full (a long outage): what did not fit waits in the
                    # outbox, and publishing later records directly would overtake it.
                    logger.warning("Kafka producer queue full; records wait in the outbox")
                    self._paused = True
                    self._leave_to_sweep(r.id for r in records[index:])
                    return

    def _leave_to_sweep(self, ids: Iterable[int]) -> None:
        # Memory stays bounded in an endless outage; what is not remembered here
        # is still in the outbox and goes with the age-based sweep.
        for record_id in ids:
            if len(self._unsent) < MAX_UNSENT_TRACKED:
                self._unsent.add(record_id)
        self._wake.set()

    def _produce(self, producer: Producer, record: OutboxRecord) -> None:
        producer.produce(
            record.topic,
            key=record.key.encode(),
            value=bytes(record.value),
            headers=[*record.headers.items(), *OWN_HEADERS],
            on_delivery=partial(self._on_delivery, record.id),
        )

    def _on_delivery(self, record_id: int, err: KafkaError | None, msg: Message) -> None:
        # Runs on the relay thread, inside poll() or flush().
        if err is None:
            self._acked.append(record_id)
            return
        producer_error()
        if err.fatal():
            self._fatal = str(err)
        logger.warning(
            "Outbox record %s not delivered: %s; it goes again",
            record_id,
            err,
            extra={"topic": msg.topic(), "partition": msg.partition()},
        )
        with self._mode_lock:
            self._paused = True
            self._leave_to_sweep([record_id])

    ### The relay thread ###

    def _run(self) -> None:
        set_thread_role("relay")
        backoff = 0.1
        next_sweep = 0.0
        last_delete = time.monotonic()
        while not self._stopping.is_set():
            producer = self._producer
            assert producer is not None
            try:
                producer.poll(POLL_SECONDS)  # delivery reports: fills self._acked
                now = time.monotonic()
                if len(self._acked) >= DELETE_BATCH_SIZE or now - last_delete >= DELETE_INTERVAL_SECONDS:
                    self._delete_acked()
                    last_delete = now
                if self._fatal is not None:
                    self._replace_producer()
                    continue
                # Only with nothing of ours in flight: a sweep then never overtakes our own records.
                if (self._wake.is_set() or now >= next_sweep) and len(producer) == 0:
                    self._wake.clear()
                    outcome = self.sweep()
                    if outcome is Outcome.FAILED:
                        next_sweep, backoff = now + backoff, min(backoff * 2, MAX_BACKOFF_SECONDS)
                    else:
                        backoff = 0.1
                        next_sweep = now + (0.0 if outcome is Outcome.SENT else SWEEP_INTERVAL_SECONDS)
            except Exception:
                logger.exception("Outbox relay pass failed")
                next_sweep = time.monotonic() + backoff
                backoff = min(backoff * 2, MAX_BACKOFF_SECONDS)
            finally:
                close_old_connections()
        self._finish()

    def _finish(self) -> None:
        if self._producer is not None:
            self._producer.flush(STOP_FLUSH_SECONDS)
        try:
            self._delete_acked()
        except Exception:  # the records stay in the outbox and go again; never lost
            logger.exception("Could not delete acknowledged outbox records on the way out")
        finally:
            close_old_connections()

    def _delete_acked(self) -> None:
        if not self._acked:
            return
        # Appends from the delivery callbacks happen on this thread too; swap, then delete.
        acked, self._acked = self._acked, []
        OutboxRecord.objects.filter(id__in=acked).delete()

    def _replace_producer(self) -> None:
        # An idempotent producer that lost its sequence state refuses everything after;
        # what it held failed through its callbacks and is left to the sweep.
        logger.error("Kafka producer failed for good (%s); starting a new one", self._fatal)
        with self._mode_lock:
            self._paused = True
            self._producer = self._producer_factory()
            self._fatal = None

    def sweep(self) -> Outcome:
        """Send what is left to the sweep, in id order, and delete what the broker took.

        Paused: this process's own records that did not go directly, then
        direct publishing resumes. Otherwise: records older than
        OUTBOX_SWEEP_AFTER_SECONDS, which their own process did not get out,
        by one relay of the deployment at a time.
        """
        if self._paused:
            return self._sweep_own()
        cutoff = timezone.now() - timedelta(seconds=settings.OUTBOX_SWEEP_AFTER_SECONDS)
        left = OutboxRecord.objects.filter(created_at__lt=cutoff).order_by("id")
        # Every relay looks twice a second; an empty outbox costs one query, not a lock round trip.
        if not left.exists():
            return Outcome.IDLE
        with relay_lock() as taken:
            if not taken:
                return Outcome.BUSY
            return self._send(list(left[:SWEEP_BATCH_SIZE]))

    def _sweep_own(self) -> Outcome:
        with self._mode_lock:
            ids = sorted(self._unsent)[:SWEEP_BATCH_SIZE]
            # Taken off now; a failure puts a record back (see _on_delivery).
            self._unsent.difference_update(ids)
        batch = list(OutboxRecord.objects.filter(id__in=ids).order_by("id"))  # gone: another relay sent it
        outcome = self._send(batch) if batch else Outcome.IDLE
        with self._mode_lock:
            if not self._unsent:
                self._paused = False
                logger.info("Outbox caught up; publishing directly again")
        return outcome

    def _send(self, batch: list[OutboxRecord]) -> Outcome:
        """Produce a batch in order, wait for the broker, and delete what it took."""
        producer = self._producer
        assert producer is not None
        for index, record in enumerate(batch):
            try:
                self._produce(producer, record)
            except BufferError:
                with self._mode_lock:  # the rest goes after these, in the next sweep
                    self._leave_to_sweep(r.id for r in batch[index:])
                break
        producer.flush(SWEEP_FLUSH_SECONDS)
        if self._fatal is not None:
            raise FatalProducerError(self._fatal)
        delivered = set(self._acked)
        self._delete_acked()
        return Outcome.SENT if all(record.id in delivered for record in batch) else Outcome.FAILED


_relay = OutboxRelay()


def publish_on_commit(records: list[OutboxRecord]) -> None:
    """Publish records from this process's relay right after the current transaction commits.

    Only a process whose entry point started the relay (web, bridge, a command
    that asks for it) publishes; in any other, a commit starts no thread and
    the records go with the servers' sweep.
    """
    if _relay.running:
        transaction.on_commit(partial(_relay.publish, records))


def process_relay() -> OutboxRelay:
    """Return this process's relay."""
    return _relay
