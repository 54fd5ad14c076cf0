"""What the Kafka side of the system looks like now, for operators.

One read gathers the broker's reachability, the project's topics (partitions,
leaders, offsets, retention), the lag of each consumer group of the bridge,
the dead letters waiting in each `<topic>.DLT`, and the outbox depth.
`manage.py kafka_status` prints it; the staff page in the admin shows it.

Lag is Kafka's own: the partition's end offset (high watermark) minus the
group's committed offset, the number `kafka-consumer-groups --describe`
prints. A partition the group never committed has no lag (`-` there, None
here), whatever it holds.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field, replace
from typing import Any, TypeVar

from confluent_kafka import ConsumerGroupTopicPartitions, KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, ConfigResource, OffsetSpec
from django.conf import settings

from .admin_ops import wanted_topics
from .clients import base_config
from .dead_letters import REPLAY_GROUP
from .models import OutboxRecord
from .registry import loops, topics
from .topics import DAY_MS

DEFAULT_TIMEOUT_SECONDS = 5.0
# What a broker answers about groups while it loads them (just started, or the first group ever).
COORDINATOR_WARMING_UP = (
    KafkaError.NOT_COORDINATOR,
    KafkaError.COORDINATOR_LOAD_IN_PROGRESS,
    KafkaError.COORDINATOR_NOT_AVAILABLE,
)
RETRY_SECONDS = 0.2

T = TypeVar("T")


@dataclass(frozen=True)
class PartitionStatus:
    partition: int
    leader: int
    replicas: list[int]
    in_sync: list[int]
    start_offset: int
    end_offset: int


@dataclass(frozen=True)
class TopicStatus:
    name: str
    retention_ms: int | None
    partitions: list[PartitionStatus]

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
class GroupStatus:
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
class KafkaStatus:
    broker: str
    reachable: bool
    error: str = ""
    topics: list[TopicStatus] = field(default_factory=list)
    missing_topics: list[str] = field(default_factory=list)
    groups: list[GroupStatus] = field(default_factory=list)
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


### Reading ###


def status_admin_client(timeout: float = DEFAULT_TIMEOUT_SECONDS) -> AdminClient:
    """Return an AdminClient that gives up on an absent broker within `timeout`, without logging every retry."""
    return AdminClient(
        {
            **base_config(),
            "client.id": "chat-admin",
            "socket.connection.setup.timeout.ms": int(timeout * 1000),
            # librdkafka logs each failed connect (several a second); the caller says it once.
            "log_level": 0,
        }
    )


def project_groups(base: str | None = None) -> dict[str, list[str]]:
    """Return the bridge's consumer groups (base group plus each loop's suffix) and the topics each reads."""
    base = base or settings.KAFKA_CONSUMER_GROUP
    groups: dict[str, list[str]] = {}
    for spec in loops().values():
        topics = groups.setdefault(base + spec.group_suffix, [])
        if spec.topic.name not in topics:
            topics.append(spec.topic.name)
    return groups


def outbox_depth() -> int:
    """Return how many outbox records wait for the broker's acknowledgement."""
    return OutboxRecord.objects.count()


def kafka_status(
    *, group_base: str | None = None, timeout: float = DEFAULT_TIMEOUT_SECONDS, admin: AdminClient | None = None
) -> KafkaStatus:
    """Read the broker, topics, group lag, dead letters and outbox depth; unreachable is a status, not an error."""
    return replace(broker_status(group_base=group_base, timeout=timeout, admin=admin), outbox_depth=outbox_depth())


def broker_status(
    *, group_base: str | None = None, timeout: float = DEFAULT_TIMEOUT_SECONDS, admin: AdminClient | None = None
) -> KafkaStatus:
    """Read what kafka_status reads from the broker alone (no database: safe on any thread)."""
    address = settings.KAFKA_BOOTSTRAP_SERVERS
    admin = admin or status_admin_client(timeout)
    try:
        return _read(admin, address, group_base, timeout)
    except KafkaException as exc:
        # A broker that stops answering halfway is as unreachable as one that never did.
        return KafkaStatus(broker=address, reachable=False, error=_reason(exc))


def _read(admin: AdminClient, address: str, group_base: str | None, timeout: float) -> KafkaStatus:
    metadata = admin.list_topics(timeout=timeout)
    names = [spec.name for spec in wanted_topics()]
    present = [name for name in names if name in metadata.topics]
    partitions = {name: sorted(metadata.topics[name].partitions.values(), key=lambda p: p.id) for name in present}
    tps = [TopicPartition(name, p.id) for name in present for p in partitions[name]]
    starts = _offsets(admin, tps, OffsetSpec.earliest(), timeout)
    ends = _offsets(admin, tps, OffsetSpec.latest(), timeout)
    retention = _retention(admin, present, timeout)
    topics = [
        TopicStatus(
            name=name,
            retention_ms=retention.get(name),
            partitions=[
                PartitionStatus(
                    partition=p.id,
                    leader=p.leader,
                    replicas=list(p.replicas),
                    in_sync=list(p.isrs),
                    start_offset=starts[(name, p.id)],
                    end_offset=ends[(name, p.id)],
                )
                for p in partitions[name]
            ],
        )
        for name in present
    ]
    groups = [
        _group_status(admin, group, [(t, p.id) for t in reads if t in partitions for p in partitions[t]], ends, timeout)
        for group, reads in project_groups(group_base).items()
    ]
    return KafkaStatus(
        broker=address,
        reachable=True,
        topics=topics,
        missing_topics=[name for name in names if name not in metadata.topics],
        groups=groups,
        dead_letters=_dead_letters(admin, partitions, starts, ends, timeout),
    )


def _offsets(
    admin: AdminClient, tps: list[TopicPartition], spec: OffsetSpec, timeout: float
) -> dict[tuple[str, int], int]:
    if not tps:
        return {}
    futures = admin.list_offsets({tp: spec for tp in tps}, request_timeout=timeout)
    return {(tp.topic, tp.partition): future.result().offset for tp, future in futures.items()}


def _retention(admin: AdminClient, names: list[str], timeout: float) -> dict[str, int]:
    if not names:
        return {}
    resources = [ConfigResource(ConfigResource.Type.TOPIC, name) for name in names]
    futures = admin.describe_configs(resources, request_timeout=timeout)
    retention = {}
    for resource, future in futures.items():
        entry = future.result().get("retention.ms")
        if entry is not None and entry.value is not None:
            retention[resource.name] = int(entry.value)
    return retention


def _committed(
    admin: AdminClient, group: str, partitions: Iterable[tuple[str, int]], timeout: float
) -> dict[tuple[str, int], int | None]:
    """Return the group's committed offset of each partition (None where it never committed)."""
    request = ConsumerGroupTopicPartitions(group, [TopicPartition(t, p) for t, p in partitions])
    if not request.topic_partitions:
        return {}
    (future,) = admin.list_consumer_group_offsets([request], request_timeout=timeout).values()
    return {(tp.topic, tp.partition): tp.offset if tp.offset >= 0 else None for tp in future.result().topic_partitions}


def _group_status(
    admin: AdminClient,
    group: str,
    partitions: list[tuple[str, int]],
    ends: dict[tuple[str, int], int],
    timeout: float,
) -> GroupStatus:
    try:
        description = _retrying(
            lambda: next(iter(admin.describe_consumer_groups([group], request_timeout=timeout).values())).result(),
            timeout,
        )
        committed = _retrying(lambda: _committed(admin, group, partitions, timeout), timeout)
    except KafkaException as exc:
        return GroupStatus(group=group, state="UNKNOWN", members=[], partitions=[], error=_reason(exc))
    lags = []
    for topic, partition in partitions:
        offset = committed.get((topic, partition))
        end = ends[(topic, partition)]
        lags.append(PartitionLag(topic, partition, offset, end, None if offset is None else max(end - offset, 0)))
    return GroupStatus(
        group=group,
        state=description.state.name,
        members=sorted(m.client_id for m in description.members),
        partitions=lags,
    )


def _retrying(read: Callable[[], T], timeout: float) -> T:
    """Return read(), again while the broker is still loading its groups, for up to `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return read()
        except KafkaException as exc:
            error = exc.args[0] if exc.args else None
            warming = isinstance(error, KafkaError) and (error.retriable() or error.code() in COORDINATOR_WARMING_UP)
            if not warming or time.monotonic() + RETRY_SECONDS > deadline:
                raise
            time.sleep(RETRY_SECONDS)


def _dead_letters(
    admin: AdminClient,
    partitions: dict[str, list[Any]],
    starts: dict[tuple[str, int], int],
    ends: dict[tuple[str, int], int],
    timeout: float,
) -> list[DeadLetterCount]:
    dead_letter_tps = [
        (t.dead_letter, p.id) for t in topics() if t.dead_letter in partitions for p in partitions[t.dead_letter]
    ]
    try:
        replayed: dict[tuple[str, int], int | None] | None = _retrying(
            lambda: _committed(admin, REPLAY_GROUP, dead_letter_tps, timeout), timeout
        )
    except KafkaException:
        replayed = None  # the totals still tell
    counts = []
    for topic in topics():
        if topic.dead_letter not in partitions:
            continue
        total = waiting = 0
        for p in partitions[topic.dead_letter]:
            key = (topic.dead_letter, p.id)
            total += ends[key] - starts[key]
            if replayed is not None:
                waiting += ends[key] - max(replayed.get(key) or 0, starts[key])
        counts.append(DeadLetterCount(topic.name, topic.dead_letter, total, waiting if replayed is not None else None))
    return counts


def _reason(exc: KafkaException) -> str:
    error = exc.args[0] if exc.args else None
    return error.str() if isinstance(error, KafkaError) else str(exc)


def _camel(value: Any) -> Any:
    if isinstance(value, dict):
        return {_camel_key(k): _camel(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_camel(v) for v in value]
    return value


def _camel_key(key: str) -> str:
    first, *rest = key.split("_")
    return first + "".join(word.capitalize() for word in rest)
