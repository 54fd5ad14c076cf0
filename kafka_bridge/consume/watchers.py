"""Watchers of a loop's driver, from outside: is its Kafka consumer stuck, is the loop ready.

Each takes the clock it reads (`time.monotonic` in the bridge), so that
tests move time by hand.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable

from confluent_kafka import Consumer, KafkaException, TopicPartition

Clock = Callable[[], float]

# How many checks in a row (each `after_seconds` apart) must see records arrive undelivered.
RISING_CHECKS = 3


class StuckWatch:
    """Notices a Kafka consumer that is stuck: it polls, but will never deliver again.

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

    Either way the driver replaces the consumer (its partitions go to the new
    one, or to another bridge); records are never skipped, only delivered
    again. A consumer that holds no partition because others hold them all
    is a steady member, and is left alone.
    """

    def __init__(self, after_seconds: float, clock: Clock = time.monotonic) -> None:
        self.after_seconds = after_seconds
        self.clock = clock
        self.new_consumer()

    def new_consumer(self) -> Callable[[str], None]:
        """Start watching a new consumer; return the statistics callback that tells its group state."""
        self.progressed()
        self._steady_at = self.clock()
        return self._statistics

    def _statistics(self, stats_json: str) -> None:
        try:
            join_state = (json.loads(stats_json).get("cgrp") or {}).get("join_state")
        except (ValueError, AttributeError):
            return
        if join_state == "steady":
            self._steady_at = self.clock()

    def progressed(self) -> None:
        """The consumer delivered records: start watching afresh."""
        self._since = self.clock()
        self._seen: tuple[frozenset[tuple[str, int]], int] | None = None
        self._rising = 0
        self._answering_since: float | None = None

    def stuck(self, consumer: Consumer) -> str | None:
        """Return why the consumer is stuck, or None; called after a poll that delivered nothing (on its thread)."""
        now = self.clock()
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


class ReadinessWatch:
    """Whether a loop is ready: it polled lately and holds partitions (what /readyz asks)."""

    def __init__(self, clock: Clock = time.monotonic) -> None:
        self.clock = clock
        # When the last poll returned, and the partitions the group gave the
        # loop's Kafka consumer (set by its rebalance callbacks).
        self.last_poll: float | None = None
        self.assignment: set[tuple[str, int]] = set()
        self.stopped = False

    def polled(self) -> None:
        """A poll returned."""
        self.last_poll = self.clock()

    def assigned(self, partitions: list[TopicPartition]) -> None:
        """The group gave the consumer these partitions (a rebalance callback, on the poll thread)."""
        self.assignment |= {(tp.topic, tp.partition) for tp in partitions}

    def revoked(self, partitions: list[TopicPartition]) -> None:
        """The group took these partitions away, or the consumer lost them."""
        self.assignment -= {(tp.topic, tp.partition) for tp in partitions}

    def reason(self, now: float, max_poll_gap: float) -> str | None:
        """Return why the loop is not ready (no recent poll, no partitions), or None when it is."""
        if self.stopped:
            return "stopped"
        if self.last_poll is None:
            return "has not polled yet"
        if now - self.last_poll > max_poll_gap:
            return f"has not polled for {now - self.last_poll:.0f}s"
        if not self.assignment:
            return "holds no partition (not joined, or more consumers than partitions)"
        return None
