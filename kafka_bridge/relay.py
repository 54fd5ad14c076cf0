"""The outbox relay: moves committed outbox records to Kafka, in order.

Every web process and the bridge run one relay thread. A commit that wrote
outbox records wakes its own process's relay at once (low latency); every
relay also looks on its own every half second, which is how records left by
a crashed process or queued during a broker outage get out. Only one relay
at a time holds the relay lock, so records leave in id order, and the id
order of one conversation's records is its seq order (they are written
under the conversation's row lock). A record is deleted only after the
broker acknowledged it; a crash in between re-sends it, which the consumers
tolerate (every handler is idempotent).
"""

from __future__ import annotations

import atexit
import contextlib
import enum
import fcntl
import logging
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

from confluent_kafka import KafkaError, Message, Producer
from django.conf import settings
from django.db import close_old_connections, connection

from .clients import discard_shared_producer, shared_producer
from .models import OutboxRecord

logger = logging.getLogger(__name__)

BATCH_SIZE = 500
IDLE_INTERVAL_SECONDS = 0.5
BUSY_RETRY_SECONDS = 0.02
MAX_BACKOFF_SECONDS = 5.0
# Longer than the producer's message.timeout.ms, so flush sees every verdict.
FLUSH_TIMEOUT_SECONDS = 15.0
# Any constant shared by all relays; it names the lock in pg_locks.
PG_LOCK_KEY = 7_226_001


class FatalProducerError(Exception):
    """The producer hit an error it cannot recover from (librdkafka says fatal); a new one is needed."""


class Outcome(enum.Enum):
    SENT = "sent"  # a batch went out; look again at once
    IDLE = "idle"  # nothing to send
    BUSY = "busy"  # another relay holds the lock
    FAILED = "failed"  # the broker did not take the batch


@contextlib.contextmanager
def relay_lock() -> Iterator[bool]:
    """Hold the cross-process relay lock if it is free; yield whether it was taken."""
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
    elif connection.vendor == "sqlite" and not connection.is_in_memory_db():
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


def deliver(producer: Producer, records: list[OutboxRecord]) -> list[int]:
    """Produce the records, wait for the broker, and return the ids of the delivered prefix."""
    errors: dict[int, KafkaError | None] = {}

    for record in records:

        def on_delivery(err: KafkaError | None, msg: Message, record_id: int = record.id) -> None:
            errors[record_id] = err
            if err is None:
                logger.debug("Outbox record %s at %s[%s]@%s", record_id, msg.topic(), msg.partition(), msg.offset())

        while True:
            try:
                producer.produce(
                    record.topic,
                    key=record.key.encode(),
                    value=bytes(record.value),
                    headers=list(record.headers.items()),
                    on_delivery=on_delivery,
                )
                break
            except BufferError:
                producer.poll(0.1)  # local queue full: let deliveries drain
    producer.flush(FLUSH_TIMEOUT_SECONDS)

    if any(err is not None and err.fatal() for err in errors.values()):
        # An idempotent producer that lost its sequence state refuses everything after.
        raise FatalProducerError(next(str(e) for e in errors.values() if e is not None and e.fatal()))
    delivered: list[int] = []
    for record in records:
        err = errors.get(record.id, KafkaError(KafkaError._TIMED_OUT))
        if err is not None:
            logger.warning("Outbox record %s not delivered: %s; will retry", record.id, err)
            break  # keep order: everything after a failure is sent again
        delivered.append(record.id)
    return delivered


def relay_once(producer: Producer, batch_size: int = BATCH_SIZE) -> Outcome:
    """Send one batch of outbox records to Kafka and delete those the broker took."""
    # Every relay looks twice a second; an empty outbox costs one query, not a lock round trip.
    if not OutboxRecord.objects.exists():
        return Outcome.IDLE
    with relay_lock() as taken:
        if not taken:
            return Outcome.BUSY
        records = list(OutboxRecord.objects.order_by("id")[:batch_size])
        if not records:
            return Outcome.IDLE
        delivered = deliver(producer, records)
        if delivered:
            OutboxRecord.objects.filter(id__in=delivered).delete()
        return Outcome.SENT if len(delivered) == len(records) else Outcome.FAILED


class OutboxRelay:
    """A daemon thread that runs `relay_once` whenever woken, and every half second."""

    def __init__(self, producer_factory: Callable[[], Producer] = shared_producer) -> None:
        self._producer_factory = producer_factory
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self._exit_hook = False

    def start(self) -> None:
        """Start the thread if it is not running yet."""
        with self._start_lock:
            if self._thread is None or not self._thread.is_alive():
                self._stopping.clear()
                self._thread = threading.Thread(target=self._run, name="outbox-relay", daemon=True)
                self._thread.start()
                # Finish the pass in hand before the process exits, so that a
                # record the broker took is not left in the outbox to go twice.
                if not self._exit_hook:
                    atexit.register(self.stop, 5.0)
                    self._exit_hook = True

    def wake(self) -> None:
        """Ask for an immediate pass (called after a commit that wrote records)."""
        self.start()
        self._wake.set()

    def stop(self, timeout: float = 20.0) -> None:
        """Finish the current pass, flush the producer and stop the thread."""
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        producer = self._producer_factory()
        backoff = 0.1
        while not self._stopping.is_set():
            try:
                outcome = relay_once(producer)
            except FatalProducerError as exc:
                logger.error("Kafka producer failed for good (%s); starting a new one", exc)
                discard_shared_producer(producer)
                producer = self._producer_factory()
                outcome = Outcome.FAILED
            except Exception:
                logger.exception("Outbox relay pass failed")
                outcome = Outcome.FAILED
            finally:
                close_old_connections()
            producer.poll(0)  # serve delivery reports of records produced directly
            if outcome is Outcome.SENT:
                backoff = 0.1
                continue
            if outcome is Outcome.FAILED:
                wait, backoff = backoff, min(backoff * 2, MAX_BACKOFF_SECONDS)
            else:
                backoff = 0.1
                wait = BUSY_RETRY_SECONDS if outcome is Outcome.BUSY else IDLE_INTERVAL_SECONDS
            self._wake.wait(wait)
            self._wake.clear()
        producer.flush(FLUSH_TIMEOUT_SECONDS)


_relay = OutboxRelay()


def wake_relay() -> None:
    """Wake this process's relay (starting it on first use) unless autostart is off."""
    if settings.OUTBOX_RELAY_AUTOSTART:
        _relay.wake()


def process_relay() -> OutboxRelay:
    """Return this process's relay."""
    return _relay
