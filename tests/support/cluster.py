"""Three Kafka nodes for the cluster tests, run by the project's own scripts/kafka.sh (KAFKA_BROKERS=3).

`make test` says where they go (TEST_KAFKA_CLUSTER_PORT,
TEST_KAFKA_CLUSTER_CONTROLLER_PORT, TEST_KAFKA_CLUSTER_DIR); node N listens
on each port + 100 * (N - 1), as the script derives them. Besides starting,
stopping and killing nodes, a Cluster answers what the fault scenarios ask
of Kafka itself: who leads which partition, when leadership moved, whether a
restarted node is back in every ISR, and which partition each message went to.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from confluent_kafka import Consumer, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient

from tests.support.stack import ROOT, require_env

NODES = 3
POLL_SECONDS = 0.05


@dataclass(frozen=True)
class Moment:
    """One instant on two clocks: monotonic, as the receivers time arrivals, and wall, as the server's createdAt."""

    monotonic: float
    wall: float

    @classmethod
    def now(cls) -> Moment:
        return cls(time.monotonic(), time.time())


@dataclass(frozen=True)
class Cluster:
    port: int
    controller_port: int
    data_dir: Path

    @classmethod
    def for_tests(cls) -> Cluster:
        return cls(
            int(require_env("TEST_KAFKA_CLUSTER_PORT")),
            int(require_env("TEST_KAFKA_CLUSTER_CONTROLLER_PORT")),
            Path(require_env("TEST_KAFKA_CLUSTER_DIR")),
        )

    @property
    def bootstrap(self) -> str:
        return ",".join(f"127.0.0.1:{self.port + 100 * i}" for i in range(NODES))

    def script(self, *args: str) -> None:
        """Run scripts/kafka.sh for this cluster."""
        env = {
            **os.environ,
            "KAFKA_BROKERS": str(NODES),
            "KAFKA_PORT": str(self.port),
            "KAFKA_CONTROLLER_PORT": str(self.controller_port),
            "KAFKA_DATA_DIR": str(self.data_dir),
        }
        env.pop("KAFKA_HEAP", None)  # the cluster's own default
        subprocess.run([str(ROOT / "scripts" / "kafka.sh"), *args], env=env, check=True, timeout=240)

    def start(self, node: int | None = None) -> None:
        """Start every node, or node `node`, and wait until the cluster counts it among its live brokers."""
        self.script("start", *([str(node)] if node else []))

    def stop(self, node: int | None = None) -> None:
        """Controlled shutdown of every node, or of node `node`."""
        self.script("stop", *([str(node)] if node else []))

    def kill(self, node: int) -> None:
        """SIGKILL node `node`: no controlled shutdown, no goodbye."""
        self.script("kill", str(node))

    def reset(self) -> None:
        """Stop every node and remove the data: the next start formats a new cluster."""
        self.stop()
        shutil.rmtree(self.data_dir, ignore_errors=True)

    def admin(self) -> AdminClient:
        return AdminClient({"bootstrap.servers": self.bootstrap})

    def leaders(self, topic: str, admin: AdminClient | None = None) -> dict[int, int]:
        """Return the leader of each partition of `topic` (-1 while it has none)."""
        metadata = (admin or self.admin()).list_topics(topic, timeout=5).topics[topic]
        return {p.id: p.leader for p in metadata.partitions.values()}

    def out_of_sync(self, node: int) -> list[str]:
        """Return the partitions (of every topic) that `node` holds a replica of but is not in sync for."""
        metadata = self.admin().list_topics(timeout=5)
        return [
            f"{name}[{p.id}]"
            for name, topic in metadata.topics.items()
            for p in topic.partitions.values()
            if node in p.replicas and node not in p.isrs
        ]

    def wait_in_sync(self, node: int, timeout: float = 90.0) -> float:
        """Wait until `node` is back in the ISR of every partition it holds; return the seconds it took."""
        started = time.monotonic()
        while lagging := self.out_of_sync(node):
            if time.monotonic() - started > timeout:
                raise AssertionError(f"node {node} not back in sync after {timeout}s for {lagging}")
            time.sleep(0.2)
        return time.monotonic() - started

    def end_offsets(self, topic: str) -> dict[int, int]:
        """Return the high watermark of each partition of `topic`."""
        consumer = Consumer({"bootstrap.servers": self.bootstrap, "group.id": f"offsets-{uuid.uuid4().hex}"})
        try:
            partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
            return {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in partitions}
        finally:
            consumer.close()

    def placement(self, topic: str, since: dict[int, int], timeout: float = 60.0) -> dict[str, int]:
        """Read `topic` from the offsets `since` to its end; return the partition of each record's messageId."""
        ends = self.end_offsets(topic)
        group = f"placement-{uuid.uuid4().hex}"
        consumer = Consumer({"bootstrap.servers": self.bootstrap, "group.id": group, "enable.auto.commit": False})
        placed: dict[str, int] = {}
        pending = {p for p, end in ends.items() if end > since.get(p, 0)}
        try:
            consumer.assign([TopicPartition(topic, p, since.get(p, 0)) for p in pending])
            deadline = time.monotonic() + timeout
            while pending:
                assert time.monotonic() < deadline, f"partitions {sorted(pending)} of {topic} not read to their end"
                record = consumer.poll(0.5)
                if record is None or record.error():
                    continue
                value = json.loads(record.value())
                if isinstance(value, dict) and "messageId" in value:
                    placed[value["messageId"]] = record.partition()
                if record.offset() >= ends[record.partition()] - 1:
                    pending.discard(record.partition())
        finally:
            consumer.close()
        return placed


def wait_leaders_moved(
    cluster: Cluster, topic: str, node: int, partitions: list[int], timeout: float = 60.0
) -> dict[int, Moment]:
    """Poll until each of `partitions` is led by a node other than `node`; return when each was first seen so."""
    admin = cluster.admin()
    moved: dict[int, Moment] = {}
    deadline = time.monotonic() + timeout
    while len(moved) < len(partitions):
        assert time.monotonic() < deadline, f"leadership of {topic} {partitions} still on node {node} or none"
        try:
            leaders = cluster.leaders(topic, admin)
        except KafkaException:  # the node asked went away: ask again
            continue
        now = Moment.now()
        for partition in partitions:
            if partition not in moved and leaders.get(partition, -1) not in (-1, node):
                moved[partition] = now
        time.sleep(POLL_SECONDS)
    return moved
