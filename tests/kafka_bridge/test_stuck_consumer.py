"""A loop's driver replaces a stuck Kafka consumer: one that holds its partitions but delivers nothing while records
arrive, or one that cannot get back into its group.

The wedge librdkafka can get into after a broker restart cannot be made on
demand; a consumer whose partitions are paused is in the same state seen from
outside (assigned, polling, fetching nothing), so the test pauses one, on the
real broker.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid

from confluent_kafka import KafkaError, KafkaException, Producer
from confluent_kafka.admin import AdminClient, NewTopic
from prometheus_client import REGISTRY

from kafka_bridge.consume.driver import LoopDriver
from kafka_bridge.consume.records import RecordInfo
from kafka_bridge.consume.watchers import StuckWatch
from kafka_bridge.topics import Topic
from messaging.events import TypingEvent


def restarts(loop: LoopDriver) -> float:
    value = REGISTRY.get_sample_value(
        "kafka_bridge_consumer_restarts_total", {"loop": loop.name, "topic": loop.topic.name}
    )
    return value or 0.0


async def eventually(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, what
        await asyncio.sleep(0.05)


async def test_a_consumer_that_delivers_nothing_while_records_arrive_is_replaced(settings):
    settings.KAFKA_STUCK_CONSUMER_SECONDS = 1.0
    name = f"stuck-test-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": settings.KAFKA_BOOTSTRAP_SERVERS})
    # One replica, writable on a three-node cluster too (whose brokers default to min.insync.replicas 2).
    single = NewTopic(name, num_partitions=1, replication_factor=1, config={"min.insync.replicas": "1"})
    admin.create_topics([single])[name].result(timeout=30)
    topic = Topic(name, TypingEvent, lambda p: p.conversation_id, 60_000)
    handled: list[int] = []

    async def handle(payload: TypingEvent, _info: RecordInfo) -> None:
        handled.append(payload.timestamp)

    producer = Producer({"bootstrap.servers": settings.KAFKA_BOOTSTRAP_SERVERS})

    def send(number: int) -> None:
        event = TypingEvent(conversation_id="c", user_id="u", is_typing=True, timestamp=number)
        producer.produce(name, key=b"c", value=event.encode())
        producer.flush(10)

    loop = LoopDriver(topic, handle, dead_letter_producer=None, group_id=f"group-{name}")  # type: ignore[arg-type]
    stopping = asyncio.Event()
    running = asyncio.create_task(loop.run(stopping))
    try:
        await eventually(lambda: loop.readiness.assignment, 30, "the loop never got its partition")
        send(1)
        await eventually(lambda: handled == [1], 30, "the healthy consumer did not deliver")
        # Idle with nothing new: no replacement, however long it waits.
        await asyncio.sleep(3)
        assert restarts(loop) == 0

        wedged = loop.consumer
        assert wedged is not None
        await loop._call(lambda: wedged.pause(wedged.assignment()))
        sent = [1]
        deadline = time.monotonic() + 30
        while len(sent) < 3 or not set(sent) <= set(handled):  # records keep arriving, as in a busy chat
            assert time.monotonic() < deadline, f"records still waiting: sent {sent}, handled {handled}"
            sent.append(sent[-1] + 1)
            send(sent[-1])
            await asyncio.sleep(0.5)
        assert restarts(loop) >= 1
        assert loop.consumer is not wedged
    finally:
        stopping.set()
        await asyncio.wait_for(running, 30)
        admin.delete_topics([name])


class Unassigned:
    """A consumer holding no partition, as librdkafka reports it; the broker answers or not."""

    def __init__(self) -> None:
        self.broker_answers = True

    def assignment(self) -> list:
        return []

    def list_topics(self, timeout: float) -> None:
        if not self.broker_answers:
            raise KafkaException(KafkaError(KafkaError._TRANSPORT))


def test_a_consumer_that_cannot_rejoin_its_group_is_replaced_and_a_steady_idle_one_is_not():
    clock = [1000.0]
    steady = json.dumps({"cgrp": {"state": "up", "join_state": "steady", "assignment_size": 0}})
    rejoining = json.dumps({"cgrp": {"state": "up", "join_state": "wait-join", "assignment_size": 0}})

    def watch_for(seconds: float, statistics: str, consumer: Unassigned) -> list[str | None]:
        watch = StuckWatch(10.0, clock=lambda: clock[0])
        report = watch.new_consumer()
        verdicts = []
        for _ in range(int(seconds / 5)):  # librdkafka reports every 5 s; the loop asks after every empty poll
            clock[0] += 5
            report(statistics)
            verdicts.append(watch.stuck(consumer))
        return verdicts

    # More consumers than partitions: this one holds none, and is a steady member. Never replaced.
    assert not any(watch_for(120, steady, Unassigned()))
    # Its session timed out in an outage and it never got back in: replaced once the broker answered for 30 s.
    verdicts = watch_for(60, rejoining, Unassigned())
    assert not any(verdicts[:7]) and any(verdicts[7:])
    assert "not back in its group" in next(v for v in verdicts if v)
    # While the broker itself does not answer, nobody could rejoin: not replaced.
    down = Unassigned()
    down.broker_answers = False
    assert not any(watch_for(120, rejoining, down))
