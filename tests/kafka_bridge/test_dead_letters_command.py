"""`manage.py dead_letters replay` against the real broker: what it says when there is nothing to replay."""

import subprocess
import sys
import time
import uuid

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition

from kafka_bridge.consume.records import H_ERROR, H_OFFSET, H_PARTITION, H_TOPIC
from kafka_bridge.operate.dead_letters import read_dead_letters
from messaging.events import TYPING_EVENTS
from tests.support.stack import COORDINATOR_WARMING_UP, ROOT, require_env

pytestmark = pytest.mark.integration


def manage(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, capture_output=True, text=True, timeout=120)


def park_dead_letter(key: bytes) -> tuple[int, int]:
    """Put one record into typing-events.DLT as the bridge would; return its partition and offset."""
    delivered = []
    producer = Producer({"bootstrap.servers": require_env("KAFKA_BOOTSTRAP_SERVERS")})
    producer.produce(
        TYPING_EVENTS.dead_letter,
        key=key,
        value=b'{"not": "a typing event"}',
        headers=[(H_TOPIC, b"typing-events"), (H_PARTITION, b"0"), (H_OFFSET, b"0"), (H_ERROR, b"test")],
        on_delivery=lambda err, msg: delivered.append((err, msg.partition(), msg.offset())),
    )
    producer.flush(15)
    ((err, partition, offset),) = delivered
    assert err is None
    return partition, offset


def end_offsets(topic: str) -> list[TopicPartition]:
    consumer = Consumer({"bootstrap.servers": require_env("KAFKA_BOOTSTRAP_SERVERS"), "group.id": "test-ends"})
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        return [
            TopicPartition(topic, p, consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1])
            for p in partitions
        ]
    finally:
        consumer.close()


def keys_since(topic: str, starts: list[TopicPartition]) -> set[bytes]:
    """Return the keys of the records a topic received after the given offsets."""
    consumer = Consumer(
        {
            "bootstrap.servers": require_env("KAFKA_BOOTSTRAP_SERVERS"),
            "group.id": "test-keys",
            "enable.partition.eof": True,
        }
    )
    keys: set[bytes] = set()
    try:
        consumer.assign(starts)
        pending = {tp.partition for tp in starts}
        while pending:
            msg = consumer.poll(10)
            assert msg is not None, "no end of partition in time"
            if msg.error():
                assert msg.error().code() == KafkaError._PARTITION_EOF, msg.error()
                pending.discard(msg.partition())
                continue
            keys.add(msg.key())
    finally:
        consumer.close()
    return keys


def waiting_offsets() -> set[tuple[int, int]]:
    return {(letter.partition, letter.offset) for letter in read_dead_letters(TYPING_EVENTS)}


@pytest.fixture(autouse=True)
def group_coordinator_ready():
    """Wait until a broker that just started answers about consumer groups (the replay group's offsets)."""
    deadline = time.monotonic() + 60
    while True:
        try:
            waiting_offsets()
            return
        except KafkaException as exc:
            if exc.args[0].code() not in COORDINATOR_WARMING_UP or time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def test_replaying_a_range_that_holds_nothing_says_so_exits_non_zero_and_replays_nothing():
    key = uuid.uuid4().hex.encode()
    partition, offset = park_dead_letter(key)
    assert (partition, offset) in waiting_offsets()

    empty = f"{partition}:{offset + 1000}-{offset + 2000}"
    result = manage("dead_letters", "replay", TYPING_EVENTS.name, "--offset", empty)
    assert result.returncode != 0
    assert f"no dead letter waiting in {TYPING_EVENTS.dead_letter} at {empty}" in result.stderr
    assert "nothing replayed" in result.stderr
    assert (partition, offset) in waiting_offsets()

    # A list that names the waiting letter beside an empty offset replays nothing either.
    result = manage(
        "dead_letters", "replay", TYPING_EVENTS.name, "--offset", f"{partition}:{offset}", "--offset", empty
    )
    assert result.returncode != 0
    assert (partition, offset) in waiting_offsets()

    # The positive control: the same command on the letter's own offset replays it.
    ends = end_offsets(TYPING_EVENTS.name)
    result = manage("dead_letters", "replay", TYPING_EVENTS.name, "--offset", f"{partition}:{offset}")
    assert result.returncode == 0, result.stderr
    assert f"replayed 1 dead letter(s) to {TYPING_EVENTS.name}" in result.stdout
    assert key in keys_since(TYPING_EVENTS.name, ends)


def test_a_malformed_offset_is_refused_with_the_expected_shape():
    result = manage("dead_letters", "replay", TYPING_EVENTS.name, "--offset", "0:9-3")
    assert result.returncode != 0
    assert "FIRST <= LAST" in result.stderr
    result = manage("dead_letters", "replay", TYPING_EVENTS.name, "--offset", "zero")
    assert result.returncode != 0
    assert "PARTITION:OFFSET or PARTITION:FIRST-LAST" in result.stderr
