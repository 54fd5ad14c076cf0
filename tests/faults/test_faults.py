"""Nothing lost, nothing doubled: bursts of 1,000 messages through real faults."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import subprocess
import time
import uuid

import pytest
import requests
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient
from prometheus_client.parser import text_string_to_metric_families

from kafka_bridge.consume.records import H_ERROR, H_OFFSET, H_PARTITION, H_TOPIC
from kafka_bridge.operate.dead_letters import read_dead_letters
from messaging.events import CHAT_MESSAGES
from notifications.events import NOTIFICATIONS
from tests.support.client import register
from tests.support.stack import ROOT, Proc, Stack, free_port, require_env

from .burst import Burst

pytestmark = [pytest.mark.integration, pytest.mark.faults]

# After recovery, a fresh message must reach every receiver live within this
# many seconds. A liveness bound, not a performance goal: generous for a
# shared 2-core machine, far below what a bridge that never resumes would need.
LIVE_WITHIN_S = 20.0

# The broker outage scenario: a single broker killed for this long under a steady rate of messages a second.
OUTAGE_SECONDS = 30.0
OUTAGE_RATE = 60.0
# What the outage may cost at most: repeated message.new frames (to all the members' sockets together) as a
# share of the messages sent, and the seconds from the broker answering again until messages sent
# after that arrive live.
MAX_REPEAT_SHARE = 0.05
RESUME_WITHIN_S = 5.0


def scrape(url: str) -> dict[str, float]:
    """Read a Prometheus endpoint into {sample name with its labels: value}."""
    response = requests.get(url, timeout=15)
    response.raise_for_status()
    return {
        sample.name + json.dumps(sample.labels, sort_keys=True): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def chat_records(conversation_ids: list[str]) -> list[str]:
    """Return the message id of every chat-messages record of these conversations, copies included."""
    consumer = Consumer(
        {"bootstrap.servers": require_env("KAFKA_BOOTSTRAP_SERVERS"), "group.id": f"count-{uuid.uuid4().hex}"}
    )
    try:
        topic = CHAT_MESSAGES.name
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        ends = {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in partitions}
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
        wanted = set(conversation_ids)
        ids: list[str] = []
        positions = {p: 0 for p in partitions}
        deadline = time.monotonic() + 60
        while any(positions[p] < ends[p] for p in partitions) and time.monotonic() < deadline:
            for msg in consumer.consume(500, 1.0):
                if msg.error():
                    continue
                positions[msg.partition()] = msg.offset() + 1
                value = json.loads(msg.value())
                if value.get("conversationId") in wanted:
                    ids.append(value["messageId"])
        return ids
    finally:
        consumer.close()


def repeat_causes(burst: Burst, bridge: Proc, base: str) -> dict[str, object]:
    """Where repeated deliveries came from: records produced twice, handled twice, resent, synced again."""
    records = chat_records(burst.conversation_ids)
    bridge_metrics = scrape(f"{bridge.http}/metrics")
    handled = bridge_metrics.get(
        'kafka_bridge_records_total{"loop": "chat-messages", "outcome": "handled", "topic": "chat-messages"}', 0
    )
    restarts = sum(v for k, v in bridge_metrics.items() if k.startswith("kafka_bridge_consumer_restarts_total"))
    web_metrics = scrape(f"{base}/metrics")
    return {
        "records produced twice": len(records) - len(set(records)),
        "records handled again": int(handled) - len(records),
        "consumer restarts": int(restarts),
        "frames resent by redelivery": int(web_metrics.get("chat_redelivered_messages_total{}", 0)),
        "repeats in syncs": sum(r.repeats_sync for r in burst.receivers),
        "repeats live to receivers": sum(r.repeats_live for r in burst.receivers),
        "repeats to senders": sum(s.repeats for s in burst.senders),
        "repeats held back by the web": int(web_metrics.get("chat_repeats_held_back_total{}", 0)),
    }


def first_answer(timeout: float = 180) -> float:
    """Wait for the broker to answer a metadata request; return when it first did (time.monotonic())."""
    # Tries to connect every 0.1 s at most (librdkafka's default backs off up to 10 s).
    admin = AdminClient(
        {
            "bootstrap.servers": require_env("KAFKA_BOOTSTRAP_SERVERS"),
            "reconnect.backoff.max.ms": 100,
            # Its refused connections go to logging, not to the test's stderr.
            "logger": logging.getLogger("tests.faults.probe"),
        }
    )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            admin.list_topics(timeout=0.5)
            return time.monotonic()
        except KafkaException:
            time.sleep(0.1)
    raise AssertionError(f"the broker did not answer within {timeout}s")


def kafka(action: str) -> None:
    """Stop or start the test broker with the project's own script (its settings come from the environment)."""
    subprocess.run([str(ROOT / "scripts" / "kafka.sh"), action], check=True, env=os.environ, timeout=180)


async def test_bridge_killed_mid_burst(fault_stack: Stack, report):
    bridge = fault_stack.start_bridge()
    _web, base = fault_stack.start_web()
    burst, sending = await Burst.launch(fault_stack, base)
    await burst.wait_sent(300)
    bridge.kill()  # SIGKILL: no commit, no goodbye
    await burst.wait_sent(600)
    restarted = time.monotonic()
    fault_stack.start_bridge()
    await sending
    done = await burst.wait_delivered(live_within=LIVE_WITHIN_S)
    report(
        {
            **burst.verify(),
            "first live after restart s": burst.first_live_after(restarted),
            "delivered s after last ack": round(done, 1),
        }
    )


async def test_broker_killed_for_30_seconds_at_60_messages_a_second(fault_stack: Stack, report):
    bridge = fault_stack.start_bridge()
    _web, base = fault_stack.start_web()
    burst = await asyncio.to_thread(Burst.prepare, fault_stack, base, per_sender=None, rate=OUTAGE_RATE)
    await burst.start_receivers()
    sending = asyncio.create_task(burst.send_all())
    try:
        await burst.wait_sent(int(3 * OUTAGE_RATE))
        await asyncio.to_thread(kafka, "kill")
        killed = time.monotonic()
        acked_before = burst.sent()
        ready = await asyncio.to_thread(requests.get, f"{base}/readyz", timeout=15)
        assert ready.status_code == 503 and "kafka" in ready.json()["failing"]
        await asyncio.sleep(max(0.0, OUTAGE_SECONDS - (time.monotonic() - killed)))
        acked_during_outage = burst.sent() - acked_before
    finally:
        starting = time.monotonic()
        started = asyncio.create_task(asyncio.to_thread(kafka, "start"))
        answering = await asyncio.to_thread(first_answer)
        await started
    # Sending goes on past the bound, so that there is something to resume with.
    await asyncio.sleep(RESUME_WITHIN_S + 1)
    burst.stop_sending()
    await sending
    done = await burst.wait_delivered(live_within=LIVE_WITHIN_S, timeout=120)
    figures = burst.verify()
    resumed = burst.live_resumed_after(answering)
    repeats = burst.repeats()
    causes = await asyncio.to_thread(repeat_causes, burst, bridge, base)
    report(
        {
            **figures,
            "acked during outage": acked_during_outage,
            "broker away s": round(answering - killed, 1),
            "of which starting s": round(answering - starting, 1),
            "repeats": f"{repeats} ({repeats / burst.total:.1%} of sent)",
            **causes,
            "live resumed s after the broker answered": resumed,
            "worst delay s": burst.worst_delay(),
            "delivered s after last ack": round(done, 1),
        }
    )
    assert acked_during_outage > 0, "sends must still be acknowledged while the broker is down"
    assert requests.get(f"{base}/readyz", timeout=15).status_code == 200
    assert repeats < MAX_REPEAT_SHARE * burst.total, f"{repeats} repeated deliveries for {burst.total} messages"
    assert resumed is not None and resumed <= RESUME_WITHIN_S, f"live delivery resumed {resumed}s after the broker"


async def test_web_server_restarted_mid_burst(fault_stack: Stack, report):
    fault_stack.start_bridge()
    port = free_port()
    web, base = fault_stack.start_web(port)
    burst, sending = await Burst.launch(fault_stack, base)
    await burst.wait_sent(300)
    shutdown_seconds = web.terminate()
    restarted = time.monotonic()
    fault_stack.start_web(port)
    await sending
    done = await burst.wait_delivered(live_within=LIVE_WITHIN_S)
    figures = burst.verify()
    # SIGTERM closed every socket with 1001 (going away), so the clients reconnected and synced.
    assert all(1001 in r.close_codes for r in burst.receivers), [r.close_codes for r in burst.receivers]
    report(
        {
            **figures,
            "web shutdown s": round(shutdown_seconds, 1),
            "first live after restart s": burst.first_live_after(restarted),
            "delivered s after last ack": round(done, 1),
        }
    )


async def test_poison_records_go_to_the_dead_letter_topic(fault_stack: Stack, report):
    fault_stack.start_bridge()
    _web, base = fault_stack.start_web()
    burst, sending = await Burst.launch(fault_stack, base)
    await burst.wait_sent(300)
    # Mid-burst: a record that is not JSON, and a valid one naming what is unknown here
    # (a notification for a user that does not exist).
    producer = Producer({"bootstrap.servers": require_env("KAFKA_BOOTSTRAP_SERVERS")})
    producer.produce(CHAT_MESSAGES.name, key=burst.conversation_ids[0], value=b"{this is not json")
    ghost_id = str(uuid.uuid4())
    producer.produce(
        NOTIFICATIONS.name,
        key="999999999",
        value=json.dumps(
            {
                "id": ghost_id,
                "userId": "999999999",
                "title": "t",
                "content": "c",
                "type": "SYSTEM",
                "relatedEntityId": None,
                "read": False,
                "createdAt": "2026-01-01T00:00:00.000Z",
            }
        ).encode(),
    )
    # And behind it, a good notification for a real user, which must still be stored.
    user = register(base, "after-poison")
    good_id = str(uuid.uuid4())
    producer.produce(
        NOTIFICATIONS.name,
        key=user.id,
        value=json.dumps(
            {
                "id": good_id,
                "userId": user.id,
                "title": "ok",
                "content": "c",
                "type": "SYSTEM",
                "relatedEntityId": None,
                "read": False,
                "createdAt": "2026-01-01T00:00:00.000Z",
            }
        ).encode(),
    )
    producer.flush(10)
    await sending
    await burst.wait_delivered(live_within=LIVE_WITHIN_S)
    figures = burst.verify()

    def stored(notification_id: str) -> int:
        return fault_stack.query("SELECT count(*) FROM notifications_notification WHERE id = %s", notification_id)[0][0]

    deadline = time.monotonic() + 60
    while stored(good_id) == 0 and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
    assert stored(good_id) == 1 and stored(ghost_id) == 0

    # Both poison records are parked with the error and where they came from.
    chat_letters = list(read_dead_letters(CHAT_MESSAGES, include_replayed=True))
    notification_letters = list(read_dead_letters(NOTIFICATIONS, include_replayed=True))
    assert any(letter.value == b"{this is not json" for letter in chat_letters)
    ghost = next(letter for letter in notification_letters if ghost_id.encode() in (letter.value or b""))
    assert "unknown user '999999999'" in ghost.header(H_ERROR)
    assert ghost.header(H_TOPIC) == NOTIFICATIONS.name
    assert ghost.header(H_PARTITION).isdigit() and ghost.header(H_OFFSET).isdigit()

    # Operators see them and can replay them; the ghost fails again and is parked again.
    listing = fault_stack.manage("dead_letters", "list", NOTIFICATIONS.name)
    assert ghost_id not in listing and "from notifications[" in listing
    waiting = list(read_dead_letters(NOTIFICATIONS))  # the topic is shared: earlier tests' letters wait too
    assert sum(ghost_id.encode() in (letter.value or b"") for letter in waiting) == 1
    assert f"{len(waiting)} dead letter(s) in {NOTIFICATIONS.dead_letter}" in listing
    replayed = fault_stack.manage("dead_letters", "replay", NOTIFICATIONS.name, "--all")
    assert f"replayed {len(waiting)} dead letter(s) to {NOTIFICATIONS.name}" in replayed
    deadline = time.monotonic() + 60
    while not any(ghost_id.encode() in (letter.value or b"") for letter in read_dead_letters(NOTIFICATIONS)):
        assert time.monotonic() < deadline, "the replayed ghost was not parked again"
        await asyncio.sleep(0.5)
    assert stored(ghost_id) == 0
    report({**figures, "dead letters": len(chat_letters) + len(notification_letters)})


async def test_one_of_two_bridges_killed(fault_stack: Stack, report):
    first = fault_stack.start_bridge("--loops", "chat-messages")
    fault_stack.start_bridge("--loops", "chat-messages")
    fault_stack.start_bridge(
        "--loops", "message-status-events", "typing-events", "notifications", "offline-notifications"
    )
    _web, base = fault_stack.start_web()
    burst, sending = await Burst.launch(fault_stack, base)
    await burst.wait_sent(300)
    first.kill()
    await sending
    done = await burst.wait_delivered(live_within=LIVE_WITHIN_S)
    report({**burst.verify(), "delivered s after last ack": round(done, 1)})


async def test_bridge_stops_cleanly_on_sigterm(fault_stack: Stack, report):
    bridge = fault_stack.start_bridge()
    _web, base = fault_stack.start_web()
    burst = Burst.prepare(fault_stack, base, per_sender=50)
    await burst.start_receivers()
    await burst.send_all()
    await burst.wait_delivered(live_within=LIVE_WITHIN_S)
    seconds = bridge.terminate(timeout=30)
    assert bridge.popen.returncode == 0, bridge.log_tail()
    assert seconds < 10, f"took {seconds:.1f}s"
    assert "Bridge stopped" in bridge.log_tail()
    report({**burst.verify(), "bridge stop s": round(seconds, 1)})
