"""Topic management: create what is missing, report what drifted."""

from __future__ import annotations

from dataclasses import dataclass

from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic

from ..consume.registry import topics
from ..produce.clients import admin_client
from ..topics import DEAD_LETTER_RETENTION_MS

TIMEOUT_SECONDS = 15.0


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    replication_factor: int
    config: dict[str, str]


def wanted_topics() -> list[TopicSpec]:
    """Return every topic the system needs: those the apps registered and their dead-letter topics."""
    specs = []
    for topic in topics():
        specs.append(TopicSpec(topic.name, topic.partitions, topic.replication_factor, topic.config()))
        specs.append(
            TopicSpec(
                topic.dead_letter,
                topic.partitions,
                topic.replication_factor,
                {"retention.ms": str(DEAD_LETTER_RETENTION_MS)},
            )
        )
    return specs


def ensure_topics(admin: AdminClient | None = None) -> tuple[list[str], list[str]]:
    """Create missing topics; return (created names, drift descriptions of existing ones)."""
    admin = admin or admin_client()
    existing = admin.list_topics(timeout=TIMEOUT_SECONDS).topics
    specs = wanted_topics()
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
    return created, drift


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
