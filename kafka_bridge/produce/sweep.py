"""The outbox relay's own producing, and its sweep: what it could not publish directly, and what others left.

When this process's producer cannot take a record (its queue is full after a
long outage) or reports one failed (an error no retry cures), the relay
pauses direct publishing: the records it could not get out, and those its
process commits meanwhile, go with the relay's own sweep, in id order, once
the producer's queue has drained; direct publishing resumes when none are
left.

The sweep sends records in id order: by one relay of the deployment at a
time (`relay_lock`) for what is older than OUTBOX_SWEEP_AFTER_SECONDS and
that no running relay answers for (its relay died, or none ran where it was
committed; see lease.py), and by this relay alone for its own records while
it is paused.
"""

from __future__ import annotations

import contextlib
import enum
import fcntl
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from datetime import timedelta
from functools import partial
from pathlib import Path

from confluent_kafka import KafkaError, Message, Producer
from django.conf import settings
from django.db import connection

from ..metrics import producer_error
from ..models import OutboxRecord
from .lease import RENEW_SECONDS, claim, disown, lease_renew, orphans
from .origin import OWN_HEADERS

logger = logging.getLogger(__name__)

SWEEP_BATCH_SIZE = 500
# How often a relay looks for records left in the outbox.
SWEEP_INTERVAL_SECONDS = 0.5
# How long a sweep waits for the broker to acknowledge what it produced.
SWEEP_FLUSH_SECONDS = 10.0
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


class RelaySweep:
    """Produces outbox records, keeps what the broker took for deletion, and sweeps what is left, in id order."""

    def __init__(self, producer_factory: Callable[[], Producer]) -> None:
        # Names this relay in its lease and in the records it answers for.
        self.id = uuid.uuid4()
        self._lease_renewed_at: float | None = None
        self._producer_factory = producer_factory
        self._producer: Producer | None = None
        # Set to make the relay thread look at the outbox now.
        self._wake = threading.Event()
        # Held while choosing between publishing directly and leaving records to the sweep.
        self._mode_lock = threading.Lock()
        self._paused = False
        # Ids of this process's records that must go again (or for the first time) while paused.
        self._unsent: set[int] = set()
        self._acked: list[int] = []
        self._fatal: str | None = None

    @property
    def paused(self) -> bool:
        """Whether direct publishing is paused (records go through the sweep)."""
        return self._paused

    def _leave_to_sweep(self, ids: Iterable[int]) -> None:
        # Memory stays bounded in an endless outage; what is not remembered here
        # is given up, and goes with the age-based sweep.
        untracked = []
        for record_id in ids:
            if len(self._unsent) < MAX_UNSENT_TRACKED:
                self._unsent.add(record_id)
            else:
                untracked.append(record_id)
        if untracked:
            disown(untracked)
        self._wake.set()

    def _renew_lease(self) -> None:
        """Renew this relay's lease when it is due (on the relay thread)."""
        now = time.monotonic()
        if self._lease_renewed_at is None or now - self._lease_renewed_at >= RENEW_SECONDS:
            lease_renew(self.id)
            self._lease_renewed_at = now

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
        OUTBOX_SWEEP_AFTER_SECONDS that no running relay answers for, by one
        relay of the deployment at a time, which takes them over first.
        """
        if self._paused:
            return self._sweep_own()
        left = orphans(timedelta(seconds=settings.OUTBOX_SWEEP_AFTER_SECONDS))
        # Every relay looks twice a second; an empty outbox costs one query, not a lock round trip.
        if not left.exists():
            return Outcome.IDLE
        with relay_lock() as taken:
            if not taken:
                return Outcome.BUSY
            batch = list(left[:SWEEP_BATCH_SIZE])
            # Before producing: another relay sweeping next must not send them too.
            claim(self.id, batch)
            return self._send(batch)

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
        # In steps: the lease must not run out while the broker keeps the batch waiting.
        deadline = time.monotonic() + SWEEP_FLUSH_SECONDS
        while producer.flush(min(RENEW_SECONDS, max(deadline - time.monotonic(), 0.0))) and (
            time.monotonic() < deadline
        ):
            self._renew_lease()
        if self._fatal is not None:
            raise FatalProducerError(self._fatal)
        delivered = set(self._acked)
        self._delete_acked()
        return Outcome.SENT if all(record.id in delivered for record in batch) else Outcome.FAILED
