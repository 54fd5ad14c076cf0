"""The topics as Kafka itself sees them, and the bridge's consumer lag."""

import asyncio
import subprocess

import pytest
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource

from tests.support.client import conversation
from tests.support.stack import ROOT, require_env

pytestmark = pytest.mark.integration

EXPECTED = {
    "chat-messages": "604800000",
    "message-status-events": "86400000",
    "typing-events": "60000",
    "notifications": "2592000000",
}


@pytest.fixture
def admin() -> AdminClient:
    # One client per test: its futures fail if the client is collected first.
    return AdminClient({"bootstrap.servers": require_env("KAFKA_BOOTSTRAP_SERVERS")})


def test_topics_have_the_seeds_partitions_and_retention(stack, admin):
    cluster = admin.list_topics(timeout=10)
    metadata = cluster.topics
    # One broker (make test's default) or three (KAFKA_BROKERS=3): replicas follow.
    replicas = min(3, len(cluster.brokers))
    resources = [ConfigResource(ConfigResource.Type.TOPIC, name) for name in EXPECTED]
    configs = {r.name: f.result() for r, f in admin.describe_configs(resources).items()}
    for name, retention in EXPECTED.items():
        assert len(metadata[name].partitions) == 3
        assert all(len(p.replicas) == replicas for p in metadata[name].partitions.values())
        assert configs[name]["retention.ms"].value == retention
        assert configs[name]["min.insync.replicas"].value == str(min(2, replicas))
        assert f"{name}.DLT" in metadata


def test_kafkas_own_tool_describes_the_topics(stack):
    result = subprocess.run(
        [
            str(ROOT / "scripts" / "kafka.sh"),
            "topics-cli",
            "org.apache.kafka.tools.TopicCommand",
            "--bootstrap-server",
            require_env("KAFKA_BOOTSTRAP_SERVERS"),
            "--describe",
            "--topic",
            "chat-messages",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert "PartitionCount: 3" in result.stdout and "retention.ms=604800000" in result.stdout


def test_kafka_topics_is_idempotent_and_reports_drift(stack, admin):
    assert "all topics present and as configured" in stack.manage("kafka_topics")
    resource = ConfigResource(
        ConfigResource.Type.TOPIC,
        "typing-events.DLT",
        incremental_configs=[ConfigEntry("retention.ms", "1234", incremental_operation=AlterConfigOpType.SET)],
    )
    for future in admin.incremental_alter_configs([resource]).values():
        future.result()
    try:
        assert "drift: typing-events.DLT: retention.ms=1234" in stack.manage("kafka_topics")
        with pytest.raises(RuntimeError, match="drifted"):
            stack.manage("kafka_topics", "--strict")
    finally:
        resource = ConfigResource(
            ConfigResource.Type.TOPIC,
            "typing-events.DLT",
            incremental_configs=[
                ConfigEntry("retention.ms", "2592000000", incremental_operation=AlterConfigOpType.SET)
            ],
        )
        for future in admin.incremental_alter_configs([resource]).values():
            future.result()


async def test_consumer_group_lag_drains_to_zero(stack, make_user):
    alice, bob = make_user("alice"), make_user("bob")
    direct = conversation(alice, bob)
    a = await alice.ws()
    try:
        for i in range(30):
            await a.send_message(direct["id"], f"m{i}")
    finally:
        await a.close()
    group = stack.env()["KAFKA_CONSUMER_GROUP"]
    consumer = Consumer({"bootstrap.servers": require_env("KAFKA_BOOTSTRAP_SERVERS"), "group.id": group})
    try:
        partitions = [TopicPartition("chat-messages", p) for p in range(3)]
        lag = None
        for _ in range(100):
            committed = consumer.committed(partitions, timeout=10)
            lag = sum(consumer.get_watermark_offsets(tp, timeout=10)[1] - max(tp.offset, 0) for tp in committed)
            if lag == 0:
                break
            await asyncio.sleep(0.2)
        assert lag == 0
    finally:
        consumer.close()
