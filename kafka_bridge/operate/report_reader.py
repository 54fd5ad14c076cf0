"""Reading the Kafka report (report.py) from the broker, the registry and the outbox."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import replace
from typing import Any, TypeVar

from confluent_kafka import ConsumerGroupTopicPartitions, KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, ConfigResource, OffsetSpec
from django.conf import settings

from ..consume.registry import loops, topics
from ..models import outbox_depth
from ..produce.clients import base_config
from .dead_letters import REPLAY_GROUP
from .provisioning import topic_names
from .report import DeadLetterCount, GroupReport, KafkaReport, PartitionLag, PartitionReport, TopicReport

DEFAULT_TIMEOUT_SECONDS = 5.0
# What a broker answers about groups while it loads them (just started, or the first group ever).
COORDINATOR_WARMING_UP = (
    KafkaError.NOT_COORDINATOR,
    KafkaError.COORDINATOR_LOAD_IN_PROGRESS,
    KafkaError.COORDINATOR_NOT_AVAILABLE,
)
RETRY_SECONDS = 0.2

T = TypeVar("T")


def report_admin_client(timeout: float = DEFAULT_TIMEOUT_SECONDS) -> AdminClient:
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


def kafka_report(
    *, group_base: str | None = None, timeout: float = DEFAULT_TIMEOUT_SECONDS, admin: AdminClient | None = None
) -> KafkaReport:
    """Read the broker, topics, group lag, dead letters and outbox depth; unreachable is a status, not an error."""
    return replace(broker_report(group_base=group_base, timeout=timeout, admin=admin), outbox_depth=outbox_depth())


def broker_report(
    *, group_base: str | None = None, timeout: float = DEFAULT_TIMEOUT_SECONDS, admin: AdminClient | None = None
) -> KafkaReport:
    """Read what kafka_status reads from the broker alone (no database: safe on any thread)."""
    address = settings.KAFKA_BOOTSTRAP_SERVERS
    admin = admin or report_admin_client(timeout)
    try:
        return _read(admin, address, group_base, timeout)
    except KafkaException as exc:
        # A broker that stops answering halfway is as unreachable as one that never did.
        return KafkaReport(broker=address, reachable=False, error=_reason(exc))


def _read(admin: AdminClient, address: str, group_base: str | None, timeout: float) -> KafkaReport:
    metadata = admin.list_topics(timeout=timeout)
    names = topic_names()
    present = [name for name in names if name in metadata.topics]
    partitions = {name: sorted(metadata.topics[name].partitions.values(), key=lambda p: p.id) for name in present}
    tps = [TopicPartition(name, p.id) for name in present for p in partitions[name]]
    starts = _offsets(admin, tps, OffsetSpec.earliest(), timeout)
    ends = _offsets(admin, tps, OffsetSpec.latest(), timeout)
    retention = _retention(admin, present, timeout)
    topics = [
        TopicReport(
            name=name,
            retention_ms=retention.get(name),
            partitions=[
                PartitionReport(
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
        _group_report(admin, group, [(t, p.id) for t in reads if t in partitions for p in partitions[t]], ends, timeout)
        for group, reads in project_groups(group_base).items()
    ]
    return KafkaReport(
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


def _group_report(
    admin: AdminClient,
    group: str,
    partitions: list[tuple[str, int]],
    ends: dict[tuple[str, int], int],
    timeout: float,
) -> GroupReport:
    try:
        description = _retrying(
            lambda: next(iter(admin.describe_consumer_groups([group], request_timeout=timeout).values())).result(),
            timeout,
        )
        committed = _retrying(lambda: _committed(admin, group, partitions, timeout), timeout)
    except KafkaException as exc:
        return GroupReport(group=group, state="UNKNOWN", members=[], partitions=[], error=_reason(exc))
    lags = []
    for topic, partition in partitions:
        offset = committed.get((topic, partition))
        end = ends[(topic, partition)]
        lags.append(PartitionLag(topic, partition, offset, end, None if offset is None else max(end - offset, 0)))
    return GroupReport(
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
