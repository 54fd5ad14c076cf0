"""The steps of a loop, one by one: no broker, no event-loop tricks, no patched clock.

Records are stand-ins with the Message interface the steps read; the
dead-letter producer and the Kafka consumer are stand-ins too. The real
path (a bridge against the broker) is in tests/integration and tests/faults.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from confluent_kafka import KafkaError, TopicPartition

from kafka_bridge.consume import records as dlt
from kafka_bridge.consume.records import RecordInfo, one_by_one
from kafka_bridge.consume.steps.commit import Commit
from kafka_bridge.consume.steps.counting import Counts
from kafka_bridge.consume.steps.dead_letter import DeadLetter
from kafka_bridge.consume.steps.decode import Decode
from kafka_bridge.consume.steps.group import GroupByKey, Progress
from kafka_bridge.consume.steps.handle import ProcessRecord, RunTogether
from kafka_bridge.consume.steps.retry import Retry, RetryPolicy, Stopping
from kafka_bridge.payloads import Unprocessable
from messaging.events import TypingEvent

TOPIC = "typing-events"


class Record:
    """A consumed record, as the steps see a confluent-kafka Message."""

    def __init__(self, partition: int, offset: int, key: bytes | None, value: bytes | None) -> None:
        self._partition, self._offset, self._key, self._value = partition, offset, key, value

    def topic(self) -> str:
        return TOPIC

    def partition(self) -> int:
        return self._partition

    def offset(self) -> int:
        return self._offset

    def key(self) -> bytes | None:
        return self._key

    def value(self) -> bytes | None:
        return self._value

    def headers(self) -> list[tuple[str, bytes]]:
        return [("producer", b"chat-backend")]

    def error(self) -> None:
        return None


def typing(partition: int, offset: int, conversation: str = "c1", timestamp: int | None = None) -> Record:
    event = TypingEvent(conversation_id=conversation, user_id="u", is_typing=True, timestamp=timestamp or offset)
    return Record(partition, offset, conversation.encode(), event.encode())


class Producer:
    """A dead-letter producer; `refuse` makes the broker refuse every record."""

    def __init__(self, refuse: bool = False) -> None:
        self.refuse = refuse
        self.produced: list[dict[str, Any]] = []
        self._reports: list[Any] = []

    def produce(self, topic: str, *, key: Any, value: Any, headers: Any, on_delivery: Any) -> None:
        self.produced.append({"topic": topic, "key": key, "value": value, "headers": dict(headers)})
        self._reports.append(on_delivery)

    def flush(self, _timeout: float) -> int:
        for report in self._reports:
            report(KafkaError(KafkaError._MSG_TIMED_OUT) if self.refuse else None, None)
        self._reports.clear()
        return 0


async def run_here(fn: Any, *args: Any) -> Any:
    """Run a blocking call as the driver's poll thread would (here: at once)."""
    return fn(*args)


def chain(
    handler: Any,
    *,
    batch_handler: Any = None,
    producer: Producer | None = None,
    attempts: int = 3,
) -> tuple[GroupByKey, Counts, Producer]:
    """Build the steps a driver builds, with no wait between attempts."""
    counts = Counts("test-loop", TOPIC)
    producer = producer or Producer()
    decode = Decode(TypingEvent)
    dead_letter = DeadLetter(producer, TOPIC + ".DLT", run_here, wall_clock=lambda: 1_700_000_000.0)  # type: ignore[arg-type]
    retry = Retry(handler, RetryPolicy(attempts=attempts, first_delay=0, max_delay=0), counts)
    process = ProcessRecord(decode, retry, dead_letter, counts)
    together = RunTogether(decode, batch_handler, counts) if batch_handler else None
    return GroupByKey(TOPIC, process, together), counts, producer


async def test_each_key_is_handled_in_order_and_a_failing_attempt_is_tried_again():
    seen: list[tuple[str, int]] = []
    failures = {("c1", 1): 1}  # the record at offset 1 fails once

    async def handle(event: TypingEvent, info: RecordInfo) -> None:
        if failures.get((event.conversation_id, info.offset), 0):
            failures[(event.conversation_id, info.offset)] -= 1
            raise ConnectionError("Redis went away")
        seen.append((event.conversation_id, event.timestamp))

    group, counts, producer = chain(handle)
    records = [typing(0, 0, "c1"), typing(0, 1, "c1"), typing(0, 2, "c2"), typing(0, 3, "c1")]
    progress = await group.submit(records, asyncio.Event())  # type: ignore[arg-type]

    assert [t for c, t in seen if c == "c1"] == [0, 1, 3]  # in order, the retried one in its place
    assert progress.finished == {(TOPIC, 0, o) for o in range(4)} and not progress.failed
    assert (counts.stats.processed, counts.stats.retries, counts.stats.dead_lettered) == (4, 1, 0)
    assert producer.produced == []


async def test_undecodable_unprocessable_and_exhausted_records_are_dead_lettered_with_where_they_came_from():
    async def handle(event: TypingEvent, _info: RecordInfo) -> None:
        if event.conversation_id == "unknown":
            raise Unprocessable("unknown conversation 'unknown'")
        if event.conversation_id == "broken":
            raise ValueError("always fails")

    group, counts, producer = chain(handle, attempts=3)
    records = [Record(1, 7, b"c1", b"not json"), typing(2, 8, "unknown"), typing(3, 9, "broken")]
    progress = await group.submit(records, asyncio.Event())  # type: ignore[arg-type]

    assert not progress.failed and len(progress.finished) == 3  # parked counts as finished
    by_offset = {int(p["headers"][dlt.H_OFFSET]): p for p in producer.produced}
    assert by_offset[7]["headers"][dlt.H_ERROR_TYPE] == b"PayloadError"
    assert by_offset[8]["headers"][dlt.H_ERROR_TYPE] == b"Unprocessable"
    assert by_offset[9]["headers"][dlt.H_ERROR] == b"ValueError: always fails"
    letter = by_offset[9]
    assert letter["topic"] == TOPIC + ".DLT" and letter["key"] == b"broken"
    assert (letter["headers"][dlt.H_TOPIC], letter["headers"][dlt.H_PARTITION]) == (TOPIC.encode(), b"3")
    assert letter["headers"][dlt.H_FAILED_AT] == b"1700000000000"
    assert letter["headers"]["producer"] == b"chat-backend"  # its own headers travel with it
    # Unprocessable is not retried; the broken one was tried three times.
    assert (counts.stats.retries, counts.stats.dead_lettered, counts.stats.processed) == (2, 3, 0)


async def test_a_record_the_broker_will_not_park_stops_its_key_and_fails_the_batch():
    async def handle(_event: TypingEvent, _info: RecordInfo) -> None:
        raise Unprocessable("never")

    group, _counts, _producer = chain(handle, producer=Producer(refuse=True))
    records = [typing(0, 0, "c1"), typing(0, 1, "c1")]
    progress = await group.submit(records, asyncio.Event())  # type: ignore[arg-type]
    assert progress.failed and progress.finished == set()


async def test_a_key_s_records_go_to_the_batch_handler_together_and_one_by_one_when_it_fails():
    calls: list[list[int]] = []
    fail_batches = [True]

    async def batch(records: list[tuple[TypingEvent, RecordInfo]]) -> None:
        calls.append([info.offset for _, info in records])
        if len(records) > 1 and fail_batches[0]:
            raise ConnectionError("pipeline failed")

    group, counts, _ = chain(one_by_one(batch), batch_handler=batch)
    records = [typing(0, 0), typing(0, 1), typing(0, 2)]
    await group.submit(records, asyncio.Event())  # type: ignore[arg-type]
    assert calls == [[0, 1, 2], [0], [1], [2]]  # the batch, then each record as a batch of one
    assert counts.stats.processed == 3

    calls.clear()
    fail_batches[0] = False
    progress = await group.submit([typing(0, 3), typing(0, 4)], asyncio.Event())  # type: ignore[arg-type]
    assert calls == [[3, 4]] and len(progress.finished) == 2


async def test_a_stop_during_a_retry_wait_ends_the_wait_at_once():
    async def handle(_event: TypingEvent, _info: RecordInfo) -> None:
        raise ConnectionError("down")

    counts = Counts("test-loop", TOPIC)
    retry = Retry(handle, RetryPolicy(attempts=5, first_delay=60, max_delay=60), counts)
    stopping = asyncio.Event()
    stopping.set()
    record = typing(0, 0)
    event, info = Decode(TypingEvent).submit(record)  # type: ignore[arg-type]
    with pytest.raises(Stopping):
        await asyncio.wait_for(retry.submit(event, info, record, stopping), 5)  # type: ignore[arg-type]


class Consumer:
    """The Kafka consumer calls the commit step makes."""

    def __init__(self, assignment: list[TopicPartition]) -> None:
        self._assignment = assignment
        self.commits: list[tuple[dict[tuple[str, int], int], bool]] = []
        self.seeks: list[tuple[str, int, int]] = []

    def commit(self, *, offsets: list[TopicPartition], asynchronous: bool) -> None:
        self.commits.append(({(tp.topic, tp.partition): tp.offset for tp in offsets}, asynchronous))

    def seek(self, tp: TopicPartition) -> None:
        self.seeks.append((tp.topic, tp.partition, tp.offset))

    def assignment(self) -> list[TopicPartition]:
        return self._assignment


async def test_commits_stop_at_the_first_unfinished_record_and_a_failure_rewinds_there():
    consumer = Consumer([TopicPartition(TOPIC, 0), TopicPartition(TOPIC, 1)])
    commit = Commit(TOPIC, run_here, pause_after_failure=0)
    pending = [typing(0, 10), typing(0, 11), typing(0, 12), typing(1, 5)]
    progress = Progress(pending, finished={(TOPIC, 0, 10), (TOPIC, 0, 12), (TOPIC, 1, 5)}, failed=True)

    await commit.submit(consumer, progress, asyncio.Event())  # type: ignore[arg-type]
    assert consumer.commits == [({(TOPIC, 0): 11, (TOPIC, 1): 6}, True)]  # without waiting
    assert consumer.seeks == [(TOPIC, 0, 11)]  # 11 and everything after it come again

    # Closing: the last commit waits for the broker, for the partitions still held.
    consumer._assignment = [TopicPartition(TOPIC, 1)]
    await commit.join(consumer)  # type: ignore[arg-type]
    assert consumer.commits[-1] == ({(TOPIC, 1): 6}, False)


async def test_without_a_failure_nothing_is_rewound():
    consumer = Consumer([TopicPartition(TOPIC, 0)])
    commit = Commit(TOPIC, run_here, pause_after_failure=0)
    progress = Progress([typing(0, 1)], finished={(TOPIC, 0, 1)})
    await commit.submit(consumer, progress, asyncio.Event())  # type: ignore[arg-type]
    assert consumer.commits == [({(TOPIC, 0): 2}, True)] and consumer.seeks == []


async def test_one_commit_is_on_its_way_at_a_time_and_what_finishes_meanwhile_goes_in_the_next():
    consumer = Consumer([TopicPartition(TOPIC, 0), TopicPartition(TOPIC, 1)])
    commit = Commit(TOPIC, run_here, pause_after_failure=0)
    for offset in (1, 2):
        progress = Progress([typing(0, offset)], finished={(TOPIC, 0, offset)})
        await commit.submit(consumer, progress, asyncio.Event())  # type: ignore[arg-type]
    progress = Progress([typing(1, 7)], finished={(TOPIC, 1, 7)})
    await commit.submit(consumer, progress, asyncio.Event())  # type: ignore[arg-type]
    assert consumer.commits == [({(TOPIC, 0): 2}, True)]  # the first is not answered yet

    commit.on_commit(None, [])
    await commit.submit(consumer, Progress([], finished=set()), asyncio.Event())  # type: ignore[arg-type]
    assert consumer.commits[1:] == [({(TOPIC, 0): 3, (TOPIC, 1): 8}, True)]  # merged, sent once answered

    # A new consumer (the old one was replaced) does not wait for answers its predecessor will never get.
    successor = Consumer([TopicPartition(TOPIC, 0)])
    progress = Progress([typing(0, 3)], finished={(TOPIC, 0, 3)})
    await commit.submit(successor, progress, asyncio.Event())  # type: ignore[arg-type]
    assert successor.commits == [({(TOPIC, 0): 4}, True)]
