"""Topic management: create what is missing, report what drifted.

Replication follows the cluster unless the settings fix it: each partition
has a replica on every broker up to three (KAFKA_REPLICATION_FACTOR), and the
broker acknowledges a record once min(2, replicas) of them hold it
(KAFKA_MIN_INSYNC_REPLICAS; the producers ask for acks=all). On three brokers
one can fail or restart without a write being refused or an acknowledged
record lost; on one broker there is nothing to replicate to.
"""

from __future__ import annotations

from dataclasses import dataclass

from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic
from django.conf import settings

from ..consume.registry import topics
from ..produce.clients import admin_client
from ..topics import DEAD_LETTER_RETENTION_MS

TIMEOUT_SECONDS = 15.0
# A third copy is enough for one broker down and another lost; more only costs.
MAX_REPLICATION_FACTOR = 3
# Two copies before an acknowledgement: a record acked survives the loss of any one broker.
MAX_MIN_INSYNC_REPLICAS = 2


class ProvisioningError(Exception):
    """The settings ask for topics that cannot work on this cluster."""


@dataclass(frozen=True)
class Replication:
    """How many brokers hold each partition, and how many must hold a record before it is acknowledged."""

    factor: int
    min_insync: int


def replication_for(brokers: int, *, factor: int = 0, min_insync: int = 0) -> Replication:
    """Return the replication for a cluster of `brokers`: the given values where non-zero, else from its size."""
    factor = factor or min(MAX_REPLICATION_FACTOR, brokers)
    min_insync = min_insync or min(MAX_MIN_INSYNC_REPLICAS, factor)
    if factor < 1:
        raise ProvisioningError("the cluster reports no broker")
    if min_insync > factor:
        raise ProvisioningError(
            f"min.insync.replicas {min_insync} is more than the replication factor {factor}: "
            "every write would be refused"
        )
    return Replication(factor, min_insync)


def configured_replication(brokers: int) -> Replication:
    """Return the replication the settings ask for on a cluster of `brokers`."""
    return replication_for(
        brokers, factor=settings.KAFKA_REPLICATION_FACTOR, min_insync=settings.KAFKA_MIN_INSYNC_REPLICAS
    )


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    replication_factor: int
    config: dict[str, str]


def topic_names() -> list[str]:
    """Return the name of every topic the system needs, dead-letter topics included."""
    return [name for topic in topics() for name in (topic.name, topic.dead_letter)]


def wanted_topics(replication: Replication) -> list[TopicSpec]:
    """Return every topic the system needs: those the apps registered and their dead-letter topics."""
    in_sync = {"min.insync.replicas": str(replication.min_insync)}
    specs = []
    for topic in topics():
        specs.append(TopicSpec(topic.name, topic.partitions, replication.factor, {**topic.config(), **in_sync}))
        specs.append(
            TopicSpec(
                topic.dead_letter,
                topic.partitions,
                replication.factor,
                {"retention.ms": str(DEAD_LETTER_RETENTION_MS), **in_sync},
            )
        )
    return specs


@dataclass(frozen=True)
class Provisioned:
    """What ensure_topics found and did."""

    brokers: int
    replication: Replication
    created: list[str]
    drift: list[str]


def ensure_topics(admin: AdminClient | None = None) -> Provisioned:
    """Create missing topics; report the replication used and how existing ones drifted from it."""
    admin = admin or admin_client()
    metadata = admin.list_topics(timeout=TIMEOUT_SECONDS)
    existing = metadata.topics
    # The brokers that answer now: the cluster's size, unless one of them is down.
    brokers = len(metadata.brokers)
    replication = configured_replication(brokers)
    specs = wanted_topics(replication)
    missing = [s for s in specs if s.name not in existing]
    created: list[str] = []
    if missing:
        futures = admin.create_topics(
            [
                NewTopic(s.name, num_partitions=s.partitions, replication_factor=s.replication_factor, config=s.config)
                for s in missing
            ],
            operation_timeout=TIMEOUT_SECONDS,
        )
        for name, future in futures.items():
            try:
                future.result()
                created.append(name)
            except Exception as exc:
                if "TOPIC_ALREADY_EXISTS" not in str(exc):  # another process created it meanwhile
                    raise
    drift = topic_drift(admin, [s for s in specs if s.name in existing], existing)
    return Provisioned(brokers, replication, created, drift)


def topic_drift(admin: AdminClient, specs: list[TopicSpec], metadata: dict) -> list[str]:
    """Describe how existing topics differ from their specs (partitions, replication, config)."""
    problems: list[str] = []
    if not specs:
        return problems
    resources = [ConfigResource(ConfigResource.Type.TOPIC, s.name) for s in specs]
    configs = {r.name: f.result() for r, f in admin.describe_configs(resources).items()}
    for spec in specs:
        partitions = metadata[spec.name].partitions
        if len(partitions) != spec.partitions:
            problems.append(f"{spec.name}: {len(partitions)} partitions, expected {spec.partitions}")
        replicas = {len(p.replicas) for p in partitions.values()}
        if replicas != {spec.replication_factor}:
            problems.append(f"{spec.name}: replication {sorted(replicas)}, expected {spec.replication_factor}")
        for key, value in spec.config.items():
            actual = configs[spec.name][key].value
            if actual != value:
                problems.append(f"{spec.name}: {key}={actual}, expected {value}")
    return problems
