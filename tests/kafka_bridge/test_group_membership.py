"""A loop's consumer is a static member of its group, and leaves it when the loop stops (on the real broker)."""

from __future__ import annotations

import asyncio
import time
import uuid

from confluent_kafka.admin import AdminClient, NewTopic

from kafka_bridge.consume.driver import LoopDriver
from kafka_bridge.consume.records import RecordInfo
from kafka_bridge.topics import Topic
from messaging.events import TypingEvent


async def eventually(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, what
        await asyncio.sleep(0.05)


def members(admin: AdminClient, group: str) -> dict[str | None, int]:
    """Return the group's members: their static ids and how many partitions each holds."""
    (description,) = [f.result(timeout=15) for f in admin.describe_consumer_groups([group]).values()]
    return {m.group_instance_id: len(m.assignment.topic_partitions) for m in description.members}


async def test_a_loop_that_stops_leaves_its_group_before_it_closes(settings):
    name = f"membership-test-{uuid.uuid4().hex[:8]}"
    group = f"group-{name}"
    admin = AdminClient({"bootstrap.servers": settings.KAFKA_BOOTSTRAP_SERVERS})
    admin.create_topics([NewTopic(name, num_partitions=2, replication_factor=1)])[name].result(timeout=30)
    topic = Topic(name, TypingEvent, lambda p: p.conversation_id, 60_000)

    async def handle(_payload: TypingEvent, _info: RecordInfo) -> None:
        pass

    loops = [LoopDriver(topic, handle, dead_letter_producer=None, group_id=group) for _ in range(2)]  # type: ignore[arg-type]
    stopping = [asyncio.Event(), asyncio.Event()]
    running = [asyncio.create_task(loop.run(stop)) for loop, stop in zip(loops, stopping, strict=True)]
    leaving, staying = loops
    try:
        await eventually(lambda: all(loop.readiness.assignment for loop in loops), 60, "both loops never got a share")
        # Static members, each under its own id.
        assert members(admin, group) == {leaving.instance_id: 1, staying.instance_id: 1}
        stopping[0].set()
        await asyncio.wait_for(running[0], 30)
        # Gone from the group as it closed: its partition is not held for a session timeout.
        assert leaving.instance_id not in members(admin, group)
        await eventually(lambda: len(staying.readiness.assignment) == 2, 30, "the other loop never took it over")
    finally:
        for stop in stopping:
            stop.set()
        await asyncio.wait_for(asyncio.gather(*running, return_exceptions=True), 30)
        admin.delete_topics([name])
