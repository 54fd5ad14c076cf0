"""The outbox relay with a stand-in producer: what it publishes, deletes, keeps and sends again."""

from datetime import timedelta

import pytest
from confluent_kafka import KafkaError
from django.db import transaction
from django.utils import timezone

from kafka_bridge.models import OutboxRecord, RelayLease
from kafka_bridge.produce.lease import lease_release, lease_renew
from kafka_bridge.produce.outbox import outbox_enqueue
from kafka_bridge.produce.relay import OutboxRelay
from kafka_bridge.produce.sweep import FatalProducerError, Outcome
from messaging.events import TYPING_EVENTS, TypingEvent
from tests.support.waiting import wait_until


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
    """Acknowledges every record on poll or flush, except those whose position is in `failures`."""

    def __init__(self, failures=None):
        self.failures = failures or {}
        self.pending = []
        self.produced = []

    def produce(self, topic, key, value, headers, on_delivery):
        self.pending.append((topic, value, on_delivery))

    def flush(self, timeout=None):
        pending, self.pending = self.pending, []
        for topic, value, on_delivery in pending:
            position = len(self.produced)
            self.produced.append(TypingEvent.decode(value).conversation_id)
            on_delivery(self.failures.get(position), FakeMessage(topic, position))
        return 0

    def poll(self, timeout=None):
        self.flush()
        return 0

    def __len__(self):
        return len(self.pending)


def enqueue(*names):
    with transaction.atomic():
        for name in names:
            outbox_enqueue(topic=TYPING_EVENTS, payload=TypingEvent(name, "1", True, 0))


def remaining():
    return [TypingEvent.decode(bytes(r.value)).conversation_id for r in OutboxRecord.objects.order_by("id")]


@pytest.fixture
def sweep_at_once(settings):
    settings.OUTBOX_SWEEP_AFTER_SECONDS = 0


def test_the_sweep_sends_records_left_behind_in_order_and_deletes_them(db, sweep_at_once):
    enqueue("c0", "c1", "c2")  # no relay runs here: as if their process had died
    relay = OutboxRelay(producer_factory=FakeProducer)
    relay._producer = producer = FakeProducer()
    assert relay.sweep() is Outcome.SENT
    assert producer.produced == ["c0", "c1", "c2"]
    assert remaining() == []
    assert relay.sweep() is Outcome.IDLE


def test_the_sweep_leaves_fresh_records_to_their_own_process(db, settings):
    settings.OUTBOX_SWEEP_AFTER_SECONDS = 60
    enqueue("fresh")
    relay = OutboxRelay()
    relay._producer = producer = FakeProducer()
    assert relay.sweep() is Outcome.IDLE
    assert producer.produced == [] and remaining() == ["fresh"]


def test_a_failed_record_is_kept(db, sweep_at_once):
    enqueue("c0", "c1", "c2")
    relay = OutboxRelay()
    relay._producer = FakeProducer({1: KafkaError(KafkaError._MSG_TIMED_OUT)})
    assert relay.sweep() is Outcome.FAILED
    assert remaining() == ["c1"] and relay.paused


def test_a_fatal_producer_error_keeps_everything(db, sweep_at_once):
    enqueue("c0", "c1")
    relay = OutboxRelay()
    relay._producer = FakeProducer({0: KafkaError(KafkaError._FATAL, fatal=True)})
    with pytest.raises(FatalProducerError):
        relay.sweep()
    assert remaining() == ["c0", "c1"]


@pytest.fixture
def running_relay(settings):
    """This process's relay, started with stand-in producers; yields the producers it made."""
    from kafka_bridge.produce import relay as relay_module

    settings.OUTBOX_RELAY_AUTOSTART = True
    settings.OUTBOX_SWEEP_AFTER_SECONDS = 60  # only what this process publishes itself
    made = []
    failures = [{}]

    class FailuresOf:
        """The failures of the n-th producer made, looked up when it reports (tests set them after start)."""

        def __init__(self, index):
            self.index = index

        def get(self, position):
            return failures[self.index].get(position) if self.index < len(failures) else None

    def factory():
        made.append(FakeProducer(FailuresOf(len(made))))
        return made[-1]

    relay = OutboxRelay(producer_factory=factory)
    original, relay_module._relay = relay_module._relay, relay
    relay.made = made
    relay.failures = failures
    relay.start()  # as the web and bridge entry points do
    try:
        yield relay
    finally:
        relay.stop()
        relay_module._relay = original


@pytest.mark.django_db(transaction=True)
def test_a_commit_is_published_at_once_and_deleted_once_acknowledged(running_relay):
    enqueue("c0", "c1")
    wait_until(lambda: not OutboxRecord.objects.exists(), 10, every=0.02)
    assert running_relay.made[0].produced == ["c0", "c1"]


@pytest.mark.django_db(transaction=True)
def test_a_rollback_publishes_nothing(running_relay):
    with pytest.raises(RuntimeError), transaction.atomic():
        outbox_enqueue(topic=TYPING_EVENTS, payload=TypingEvent("rolled-back", "1", True, 0))
        raise RuntimeError
    enqueue("kept")  # the control: a commit does go out
    wait_until(lambda: not OutboxRecord.objects.exists(), 10, every=0.02)
    assert running_relay.made[0].produced == ["kept"]


@pytest.mark.django_db(transaction=True)
def test_a_failed_record_goes_again_before_later_commits(running_relay):
    running_relay.failures[:] = [{0: KafkaError(KafkaError._MSG_TIMED_OUT)}]
    enqueue("first")  # fails once: the relay pauses direct publishing and sends it again
    wait_until(lambda: len(running_relay.made[0].produced) == 2, 10, every=0.02)
    enqueue("second")
    wait_until(lambda: not OutboxRecord.objects.exists(), 10, every=0.02)
    # Sent again before the later commit, which went through the sweep, not around it.
    assert running_relay.made[0].produced == ["first", "first", "second"]
    wait_until(lambda: not running_relay.paused, 10, every=0.02)


@pytest.mark.django_db(transaction=True)
def test_the_relay_replaces_a_producer_that_failed_for_good(running_relay):
    fatal = KafkaError(KafkaError._FATAL, fatal=True)
    running_relay.failures[:] = [{0: fatal, 1: fatal}, {}]  # a fatal error fails all it holds
    enqueue("c0", "c1")
    wait_until(lambda: not OutboxRecord.objects.exists(), 10, every=0.02)
    assert len(running_relay.made) == 2
    assert running_relay.made[1].produced == ["c0", "c1"]


### Leases: whose records are whose ###


class SilentProducer(FakeProducer):
    """A producer whose broker is away: it takes records and never reports on them."""

    def flush(self, timeout=None):
        return len(self.pending)

    def poll(self, timeout=None):
        return 0


@pytest.fixture
def quick_flush(monkeypatch):
    monkeypatch.setattr("kafka_bridge.produce.sweep.SWEEP_FLUSH_SECONDS", 0.2)


def owned_by(relay_id):
    OutboxRecord.objects.update(relay=relay_id)


def test_records_of_a_relay_whose_lease_runs_are_its_own_however_old(db, sweep_at_once):
    enqueue("c0", "c1")
    owner = OutboxRelay()
    lease_renew(owner.id)  # alive: its broker is away, and it holds the records in flight
    owned_by(owner.id)
    sweeper = OutboxRelay()
    sweeper._producer = producer = FakeProducer()
    assert sweeper.sweep() is Outcome.IDLE
    assert producer.produced == [] and remaining() == ["c0", "c1"]
    # The control: once its lease has run out (its process died), the sweep sends them.
    RelayLease.objects.filter(id=owner.id).update(alive_until=timezone.now() - timedelta(seconds=1))
    assert sweeper.sweep() is Outcome.SENT
    assert producer.produced == ["c0", "c1"] and remaining() == []


def test_a_relay_that_stops_gives_its_records_up_at_once(db, sweep_at_once):
    enqueue("c0")
    owner = OutboxRelay()
    lease_renew(owner.id)
    owned_by(owner.id)
    lease_release(owner.id)
    sweeper = OutboxRelay()
    sweeper._producer = producer = FakeProducer()
    assert sweeper.sweep() is Outcome.SENT and producer.produced == ["c0"]


def test_a_sweep_takes_over_what_it_sends_so_that_no_other_sweep_sends_it_too(db, sweep_at_once, quick_flush):
    enqueue("c0", "c1")  # committed where no relay runs
    first = OutboxRelay()
    first._producer = SilentProducer()
    assert first.sweep() is Outcome.FAILED  # the broker is away: the records wait in its producer
    assert set(OutboxRecord.objects.values_list("relay", flat=True)) == {first.id}
    assert RelayLease.objects.filter(id=first.id).exists()  # renewed while it waited
    second = OutboxRelay()
    second._producer = producer = FakeProducer()
    assert second.sweep() is Outcome.IDLE and producer.produced == []


def test_records_past_what_a_paused_relay_remembers_are_given_up_to_any_sweep(db, monkeypatch):
    monkeypatch.setattr("kafka_bridge.produce.sweep.MAX_UNSENT_TRACKED", 1)
    enqueue("c0", "c1")
    relay = OutboxRelay()
    owned_by(relay.id)
    first, second = OutboxRecord.objects.order_by("id")
    relay._leave_to_sweep([first.id, second.id])
    assert relay._unsent == {first.id}
    assert dict(OutboxRecord.objects.values_list("id", "relay")) == {first.id: relay.id, second.id: None}


@pytest.mark.django_db(transaction=True)
def test_a_commit_names_its_process_s_relay_which_holds_a_lease_until_it_stops(running_relay):
    with transaction.atomic():
        outbox_enqueue(topic=TYPING_EVENTS, payload=TypingEvent("c0", "1", True, 0))
        assert OutboxRecord.objects.get().relay == running_relay.id
    wait_until(lambda: not OutboxRecord.objects.exists(), 10, every=0.02)
    assert RelayLease.objects.get(id=running_relay.id).alive_until > timezone.now()
    running_relay.stop()
    assert not RelayLease.objects.filter(id=running_relay.id).exists()
