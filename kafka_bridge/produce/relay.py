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
renews the relay's lease on the records its process commits (lease.py), and
twice a second sweeps the outbox for records older than
OUTBOX_SWEEP_AFTER_SECONDS that no running relay answers for (left by a
process that died, or by one that does not relay) under a deployment-wide
lock, so that only one relay sweeps at a time.

Order. The key keeps one conversation in one partition, and a producer
appends to a partition in the order it was given records. One conversation's
commits are serialized by its row lock, so they reach `publish` in seq
order, and a producer that never gives up on a record while its process
lives (`message.timeout.ms` 0) keeps that order through broker outages,
and, as its lease keeps other relays' sweeps off its records, sends each
once. A record sent twice (its process died after the broker took it, or
stalled past its lease) arrives twice; consumers and clients drop repeats
by id, and as every copy travels in order, the first copies still arrive in
order.

What the relay leaves to the sweep, and the sweep itself: sweep.py.
"""

from __future__ import annotations

import atexit
import logging
import threading
import time
import uuid
from collections.abc import Callable
from functools import partial

from confluent_kafka import Producer
from django.db import close_old_connections, transaction

from core.logs import set_thread_role

from ..models import OutboxRecord
from .clients import relay_producer
from .lease import lease_release
from .sweep import SWEEP_INTERVAL_SECONDS, Outcome, RelaySweep

logger = logging.getLogger(__name__)

# How long the relay thread waits for delivery reports before looking at the clock again.
POLL_SECONDS = 0.05
# Acknowledged records are deleted in one statement per batch, at most this often...
DELETE_INTERVAL_SECONDS = 0.05
# ...or as soon as this many are waiting.
DELETE_BATCH_SIZE = 1000
MAX_BACKOFF_SECONDS = 5.0
# How long stopping waits for the broker to acknowledge what is in flight.
STOP_FLUSH_SECONDS = 10.0


class OutboxRelay(RelaySweep):
    """Publishes this process's commits at once, deletes what the broker took, and sweeps what others left."""

    def __init__(self, producer_factory: Callable[[], Producer] = relay_producer) -> None:
        super().__init__(producer_factory)
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self._exit_hook = False

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
                self._renew_lease()
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
            # What the broker did not take goes with the sweep of other relays at once.
            lease_release(self.id)
        except Exception:  # the records stay in the outbox and go again; never lost
            logger.exception("Could not delete acknowledged outbox records or give up the lease on the way out")
        finally:
            close_old_connections()


_relay = OutboxRelay()


def relay_owner() -> uuid.UUID | None:
    """Return the id of the relay that publishes this process's commits, None when none runs."""
    return _relay.id if _relay.running else None


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
