"""The Prometheus metrics of the Kafka side: the bridge's loops, the producers, the outbox.

Every metric of this package is defined here, once. The loops and the relay
only increment counters and observe histograms (no lock of ours, no round
trip); what needs a query or the broker's numbers is read when scraped
(`OutboxDepthCollector`, `LoopReadyCollector`) or arrives with librdkafka's
statistics (`LagFromStatistics`). The bridge serves them on its own HTTP endpoint
(consume/probes.py) from `BRIDGE_REGISTRY`, the web processes on `/metrics`.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Callable, Iterator, Mapping

from prometheus_client import (
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

logger = logging.getLogger(__name__)

# The outcomes of a consumed record.
HANDLED = "handled"
RETRIED = "retried"  # one failed attempt that is tried again
DEAD_LETTERED = "dead_lettered"

# How often librdkafka reports a consumer's statistics (and so its lag).
STATISTICS_INTERVAL_MS = 5_000

RECORDS = Counter(
    "kafka_bridge_records",
    "Records the bridge's loops consumed, by outcome (handled, retried: a failed attempt tried again, dead_lettered).",
    ["loop", "topic", "outcome"],
)
HANDLE_SECONDS = Histogram(
    "kafka_bridge_handle_seconds",
    "Seconds from the start of handling a record to its end (handled or dead-lettered, retries included; "
    "a record handled with others of its key counts their common time).",
    ["loop", "topic"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)
CONSUMER_LAG = Gauge(
    "kafka_consumer_lag",
    "Records of a partition after the group's committed offset (high watermark minus committed offset), "
    "for the partitions this bridge holds; from librdkafka's statistics, every few seconds.",
    ["group", "topic", "partition"],
    multiprocess_mode="liveall",
)
CONSUMER_RESTARTS = Counter(
    "kafka_bridge_consumer_restarts",
    "Kafka consumers a loop replaced: stuck (records waited in its partitions while it delivered none, or it did not "
    "get back into its group), its group session lost while the broker was away, or failed for good.",
    ["loop", "topic"],
)
PRODUCER_ERRORS = Counter(
    "kafka_producer_errors",
    "Records a producer reported not delivered (outbox relay, typing events, dead letters).",
)


# What the bridge's /metrics lists: its own series and its process's. Not
# prometheus_client's default registry, which holds every metric of every
# module the process imported: the bridge imports the apps' modules, and with
# them the web's series (chat_ws_connections, chat_send_ack_seconds, ...),
# which a bridge never counts.
BRIDGE_REGISTRY = CollectorRegistry()
# The series only a bridge counts; the web's /metrics leaves them out (chat_project/metrics.py).
BRIDGE_ONLY = (RECORDS, HANDLE_SECONDS, CONSUMER_LAG, CONSUMER_RESTARTS)
for _collector in (
    RECORDS,
    HANDLE_SECONDS,
    CONSUMER_LAG,
    CONSUMER_RESTARTS,
    PRODUCER_ERRORS,
    PROCESS_COLLECTOR,
    PLATFORM_COLLECTOR,
    GC_COLLECTOR,
):
    BRIDGE_REGISTRY.register(_collector)


def start_counting(loop: str, topic: str) -> None:
    """Show a loop's counters at 0 from its start: a series that first appears at 1 shows no increase."""
    for outcome in (HANDLED, RETRIED, DEAD_LETTERED):
        RECORDS.labels(loop, topic, outcome)
    CONSUMER_RESTARTS.labels(loop, topic)


def record_handled(loop: str, topic: str, seconds: float, count: int = 1) -> None:
    """Count records handled by one handler call that took `seconds`."""
    RECORDS.labels(loop, topic, HANDLED).inc(count)
    histogram = HANDLE_SECONDS.labels(loop, topic)
    for _ in range(count):
        histogram.observe(seconds)


def record_retried(loop: str, topic: str) -> None:
    """Count a failed attempt at a record that will be tried again."""
    RECORDS.labels(loop, topic, RETRIED).inc()


def record_dead_lettered(loop: str, topic: str, seconds: float) -> None:
    """Count a record parked in the dead-letter topic after `seconds` of trying."""
    RECORDS.labels(loop, topic, DEAD_LETTERED).inc()
    HANDLE_SECONDS.labels(loop, topic).observe(seconds)


def record_consumer_restart(loop: str, topic: str) -> None:
    """Count a consumer that a loop replaced (stuck, its session lost, or failed for good)."""
    CONSUMER_RESTARTS.labels(loop, topic).inc()


def producer_error() -> None:
    """Count a record a producer reported not delivered."""
    PRODUCER_ERRORS.inc()


class LagFromStatistics:
    """A consumer's `stats_cb`: sets kafka_consumer_lag for the partitions it holds.

    librdkafka computes each partition's `consumer_lag` from the committed
    offset and the high watermark (the last stable offset under
    read_committed, the same without transactions); -1 where it does not know
    both, and then the partition is left out. A partition the consumer no
    longer holds is removed, so another bridge's number is not shadowed.
    """

    def __init__(self, group: str, topic: str) -> None:
        self.group = group
        self.topic = topic
        self._shown: set[str] = set()

    def __call__(self, stats_json: str) -> None:
        try:
            partitions = json.loads(stats_json).get("topics", {}).get(self.topic, {}).get("partitions", {})
        except (ValueError, AttributeError):
            logger.warning("Unreadable statistics from the consumer of %s", self.topic)
            return
        shown = set()
        for partition, figures in partitions.items():
            lag = figures.get("consumer_lag", -1)
            # "-1" is librdkafka's internal unassigned partition.
            if partition == "-1" or not isinstance(lag, int) or lag < 0:
                continue
            CONSUMER_LAG.labels(self.group, self.topic, partition).set(lag)
            shown.add(partition)
        for partition in self._shown - shown:
            self.forget(partition)
        self._shown = shown

    def forget(self, partition: str | None = None) -> None:
        """Remove the lag of a partition (all of this consumer's when None) from the metrics."""
        for name in [partition] if partition is not None else list(self._shown):
            with contextlib.suppress(KeyError):  # never shown
                CONSUMER_LAG.remove(self.group, self.topic, name)
            self._shown.discard(name)


class OutboxDepthCollector(Collector):
    """chat_outbox_records: outbox records waiting for the broker, counted when scraped (one query)."""

    def collect(self) -> Iterator[GaugeMetricFamily]:
        from .models import outbox_depth  # imported here: this module loads before the app registry

        yield GaugeMetricFamily(
            "chat_outbox_records",
            "Outbox records not yet acknowledged by the broker (committed, waiting for Kafka).",
            value=outbox_depth(),
        )


class LoopReadyCollector(Collector):
    """kafka_bridge_loop_ready{loop}: 1 while a loop is ready as /readyz says (polls, holds partitions), else 0.

    `ready` is asked when scraped and maps each loop's name to its readiness.
    """

    def __init__(self, ready: Callable[[], Mapping[str, bool]]) -> None:
        self.ready = ready

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            "kafka_bridge_loop_ready",
            "1 while the loop has polled within BRIDGE_READY_POLL_SECONDS and holds partitions of its topic, else 0.",
            labels=["loop"],
        )
        for loop, ready in self.ready().items():
            family.add_metric([loop], 1 if ready else 0)
        yield family
