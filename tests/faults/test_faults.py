"""Nothing lost, nothing doubled: bursts of 1,000 messages through real faults."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import time
import uuid

import pytest
import requests
from confluent_kafka import Producer

from kafka_bridge.consume.records import H_ERROR, H_OFFSET, H_PARTITION, H_TOPIC
from kafka_bridge.operate.dead_letters import read_dead_letters
from messaging.events import CHAT_MESSAGES
from notifications.events import NOTIFICATIONS
from tests.support.client import register
from tests.support.stack import ROOT, Stack, free_port, require_env

from .burst import Burst

pytestmark = [pytest.mark.integration, pytest.mark.faults]

# After recovery, a fresh message must reach every receiver live within this
# many seconds. A liveness bound, not a performance goal: generous for a
# shared 2-core machine, far below what a bridge that never resumes would need.
LIVE_WITHIN_S = 20.0


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


async def test_broker_down_for_30_seconds_mid_burst(fault_stack: Stack, report):
    fault_stack.start_bridge()
    _web, base = fault_stack.start_web()
    burst, sending = await Burst.launch(fault_stack, base)
    try:
        await burst.wait_sent(250)
        await asyncio.to_thread(kafka, "stop")
        stopped = time.monotonic()
        acked_before = burst.sent()
        ready = requests.get(f"{base}/readyz", timeout=15)
        assert ready.status_code == 503 and "kafka" in ready.json()["failing"]
        await asyncio.sleep(max(0.0, 30 - (time.monotonic() - stopped)))
        acked_during_outage = burst.sent() - acked_before
    finally:
        await asyncio.to_thread(kafka, "start")
    restarted = time.monotonic()
    await sending
    done = await burst.wait_delivered(live_within=LIVE_WITHIN_S, timeout=240)
    assert acked_during_outage > 0, "sends must still be acknowledged while the broker is down"
    assert requests.get(f"{base}/readyz", timeout=15).status_code == 200
    report(
        {
            **burst.verify(),
            "acked during outage": acked_during_outage,
            "first live after restart s": burst.first_live_after(restarted),
            "delivered s after last ack": round(done, 1),
        }
    )


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
