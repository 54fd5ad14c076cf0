"""A loop's own statistics and its Prometheus counters, counted together by the steps."""

from __future__ import annotations

from dataclasses import dataclass

from ... import metrics


@dataclass
class LoopStats:
    processed: int = 0
    dead_lettered: int = 0
    retries: int = 0


class Counts:
    """Count what became of a loop's records, in its statistics and its metrics."""

    def __init__(self, loop: str, topic: str) -> None:
        self.loop = loop
        self.topic = topic
        self.stats = LoopStats()

    def handled(self, seconds: float, count: int = 1) -> None:
        """Count records handled by one handler call that took `seconds`."""
        self.stats.processed += count
        metrics.record_handled(self.loop, self.topic, seconds, count)

    def retried(self) -> None:
        """Count a failed attempt that will be tried again."""
        self.stats.retries += 1
        metrics.record_retried(self.loop, self.topic)

    def dead_lettered(self, seconds: float) -> None:
        """Count a record parked in the dead-letter topic after `seconds` of trying."""
        self.stats.dead_lettered += 1
        metrics.record_dead_lettered(self.loop, self.topic, seconds)
