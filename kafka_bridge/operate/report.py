"""What the Kafka side of the system looks like now, for operators: the Kafka report.

One read (report_reader.py) gathers the broker's reachability, the
project's topics (partitions, leaders, offsets, retention), the lag of each
consumer group of the bridge, the dead letters waiting in each `<topic>.DLT`,
and the outbox depth. `manage.py kafka_status` prints it; the staff page in
the admin (pages.py) shows it.

Lag is Kafka's own: the partition's end offset (high watermark) minus the
group's committed offset, the number `kafka-consumer-groups --describe`
prints. A partition the group never committed has no lag (`-` there, None
here), whatever it holds.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from ..payloads import camel
from ..topics import DAY_MS


@dataclass(frozen=True)
class PartitionReport:
    partition: int
    leader: int
    replicas: list[int]
    in_sync: list[int]
    start_offset: int
    end_offset: int


@dataclass(frozen=True)
class TopicReport:
    name: str
    retention_ms: int | None
    partitions: list[PartitionReport]

    @property
    def records(self) -> int:
        """Return how many records the topic holds (within retention)."""
        return sum(p.end_offset - p.start_offset for p in self.partitions)

    @property
    def retention(self) -> str:
        """Return the retention for people: 7d, 1min."""
        return format_retention(self.retention_ms)


@dataclass(frozen=True)
class PartitionLag:
    topic: str
    partition: int
    committed: int | None
    end_offset: int
    lag: int | None


@dataclass(frozen=True)
class GroupReport:
    group: str
    state: str
    # The client ids of the group's members: which loops and processes consume now.
    members: list[str]
    partitions: list[PartitionLag]
    # Why the group could not be read ('' when it was).
    error: str = ""

    @property
    def lag(self) -> int:
        """Return the group's total lag over the partitions it committed."""
        return sum(p.lag for p in self.partitions if p.lag is not None)


@dataclass(frozen=True)
class DeadLetterCount:
    topic: str
    dead_letter_topic: str
    # Records the dead-letter topic holds, replayed or not.
    total: int
    # Those not replayed yet (after the replay group's committed offset); None when that could not be read.
    waiting: int | None


@dataclass(frozen=True)
class KafkaReport:
    broker: str
    reachable: bool
    error: str = ""
    topics: list[TopicReport] = field(default_factory=list)
    missing_topics: list[str] = field(default_factory=list)
    groups: list[GroupReport] = field(default_factory=list)
    dead_letters: list[DeadLetterCount] = field(default_factory=list)
    outbox_depth: int | None = None

    def as_json(self) -> dict[str, Any]:
        """Return the status as JSON-ready data, in the project's camelCase."""
        data = _camel(asdict(self))
        for topic, status in zip(data["topics"], self.topics, strict=True):
            topic["records"] = status.records
        for group, group_status in zip(data["groups"], self.groups, strict=True):
            group["lag"] = group_status.lag
        return data


def format_retention(ms: int | None) -> str:
    """Return a retention in its largest whole unit (7d, 1h, 60s); -1 is forever."""
    if ms is None:
        return "?"
    if ms < 0:
        return "forever"
    for unit, size in (("d", DAY_MS), ("h", 3_600_000), ("min", 60_000), ("s", 1000)):
        if ms and ms % size == 0:
            return f"{ms // size}{unit}"
    return f"{ms}ms"


def _camel(value: Any) -> Any:
    if isinstance(value, dict):
        return {camel(k): _camel(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_camel(v) for v in value]
    return value
