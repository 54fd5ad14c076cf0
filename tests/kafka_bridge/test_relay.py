"""The outbox relay with a stand-in producer: what it deletes, keeps and retries."""

import time

import pytest
from confluent_kafka import KafkaError
from django.db import transaction

from kafka_bridge.models import OutboxRecord
from kafka_bridge.outbox import outbox_enqueue
from kafka_bridge.payloads import TypingEvent
from kafka_bridge.relay import FatalProducerError, OutboxRelay, Outcome, relay_once
from kafka_bridge.topics import TYPING_EVENTS


class FakeMessage:
    def __init__(self, topic, offset):
        self._topic, self._offset = topic, offset

    def topic(self):
        return self._topic

    def partition(self):
        return 0

    def offset(self):
        return self._offset


class FakeProducer:
    """Acknowledges every record, except those whose position is in `failures`."""

    def __init__(self, failures=None):
        self.failures = failures or {}
        self.pending = []
        self.produced = []

    def produce(self, topic, key, value, headers, on_delivery):
        self.pending.append((topic, value, on_delivery))

    def flush(self, timeout=None):
        for topic, value, on_delivery in self.pending:
            position = len(self.produced)
            self.produced.append(value)
            on_delivery(self.failures.get(position), FakeMessage(topic, position))
        self.pending = []
        return 0

    def poll(self, timeout=None):
        return 0


def enqueue(n):
    with transaction.atomic():
        for i in range(n):
            outbox_enqueue(topic=TYPING_EVENTS, payload=TypingEvent(f"c{i}", "1", True, i))


def test_delivered_records_are_deleted_in_order(db):
    enqueue(3)
    producer = FakeProducer()
    assert relay_once(producer) is Outcome.SENT
    assert [TypingEvent.decode(v).conversation_id for v in producer.produced] == ["c0", "c1", "c2"]
    assert not OutboxRecord.objects.exists()
    assert relay_once(producer) is Outcome.IDLE


def test_everything_from_the_first_failure_on_is_kept(db):
    enqueue(4)
    producer = FakeProducer({1: KafkaError(KafkaError._MSG_TIMED_OUT)})
    assert relay_once(producer) is Outcome.FAILED
    remaining = [TypingEvent.decode(bytes(r.value)).conversation_id for r in OutboxRecord.objects.order_by("id")]
    assert remaining == ["c1", "c2", "c3"]  # c2 and c3 go again, after c1: order is kept


def test_a_fatal_producer_error_keeps_everything(db):
    enqueue(2)
    producer = FakeProducer({0: KafkaError(KafkaError._FATAL, fatal=True)})
    with pytest.raises(FatalProducerError):
        relay_once(producer)
    assert OutboxRecord.objects.count() == 2


@pytest.mark.django_db(transaction=True)
def test_the_relay_replaces_a_producer_that_failed_for_good():
    enqueue(2)
    producers = [FakeProducer({0: KafkaError(KafkaError._FATAL, fatal=True)}), FakeProducer()]
    made = []

    def factory():
        made.append(producers[len(made)])
        return made[-1]

    relay = OutboxRelay(producer_factory=factory)
    relay.start()
    try:
        deadline = time.monotonic() + 10
        while OutboxRecord.objects.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        relay.stop()
    assert not OutboxRecord.objects.exists()
    assert len(made) == 2 and len(producers[1].produced) == 2
