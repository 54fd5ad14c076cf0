"""Prometheus metrics through the real system: the web's /metrics and the bridge's own endpoint.

Messages go WebSocket -> daphne (two processes on one port) -> PostgreSQL ->
Kafka -> bridge -> Redis -> WebSocket, and both endpoints count exactly what
went through. The web answers /metrics to loopback and METRICS_ALLOWED_CIDRS
only; the bridge's /readyz goes 503 while a loop is stuck and 200 again after.
"""

from __future__ import annotations

import socket
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import psutil
import psycopg
import pytest
import requests
from confluent_kafka import Producer
from prometheus_client.parser import text_string_to_metric_families

from tests.support.client import conversation, register
from tests.support.stack import Proc, Stack, require_env, start_group_at_end
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(url: str, **headers: str) -> Samples:
    """Read a Prometheus text endpoint into {(sample name, labels): value}."""
    response = requests.get(url, headers=headers, timeout=15)
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"].startswith("text/plain; version=")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def external_ipv4() -> str | None:
    """Return an IPv4 address of this machine that is not loopback (None when it has none)."""
    for addresses in psutil.net_if_addrs().values():
        for address in addresses:
            if address.family == socket.AF_INET and not address.address.startswith("127."):
                return address.address
    return None


def session_bridge(stack: Stack) -> Proc:
    return next(p for p in stack.procs if p.http)


@pytest.fixture(scope="module")
def two_process_web(stack: Stack) -> Iterator[tuple[Proc, str]]:
    """A web server of two processes on one port, on every interface, without METRICS_ALLOWED_CIDRS."""
    proc, base = stack.start_web(processes=2, host="0.0.0.0", env={"METRICS_ALLOWED_CIDRS": ""})
    try:
        yield proc, base
    finally:
        proc.terminate()
        stack.procs.remove(proc)


async def test_both_endpoints_count_exactly_what_went_through(stack: Stack, two_process_web):
    _proc, base = two_process_web
    bridge = session_bridge(stack)
    sender, receiver = register(base, "metrics-a"), register(base, "metrics-b")
    conversation_id = conversation(sender, receiver)["id"]
    # Earlier tests' records are handled: the bridge's counters now move for ours alone.
    stack.wait_loop_caught_up("chat-messages")
    web_before = scrape(f"{base}/metrics")
    bridge_before = scrape(f"{bridge.http}/metrics")
    assert value(web_before, "chat_ws_connections") == 0  # a new server: nobody connected yet

    sockets = [await sender.ws(), await receiver.ws(), await receiver.ws()]
    web_open = scrape(f"{base}/metrics")
    # The two processes each count their own sockets; the scrape sums them.
    assert value(web_open, "chat_ws_connections") == 3

    count = 7
    for n in range(count):
        await sockets[0].send_message(conversation_id, f"counted {n}")
    for receiving in sockets[1:]:
        await receiving.wait_for(lambda f: f.get("type") == "message.new", count=count)
    stack.wait_loop_caught_up("chat-messages")  # committed, so handled and counted
    for s in sockets:
        await s.close()

    def closed() -> bool:
        return value(scrape(f"{base}/metrics"), "chat_ws_connections") == 0

    wait_until(closed, 15, "chat_ws_connections did not come back to 0")
    web_after = scrape(f"{base}/metrics")
    bridge_after = scrape(f"{bridge.http}/metrics")

    def delta(after: Samples, before: Samples, name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta(web_after, web_before, "chat_messages_sent_total") == count
    assert delta(web_after, web_before, "chat_send_ack_seconds_count") == count
    assert delta(web_after, web_before, "chat_send_ack_seconds_sum") > 0
    assert "chat_outbox_records" in {name for name, _ in web_after}
    assert value(web_after, "kafka_producer_errors_total") == 0
    # Each endpoint lists its own role's series: the bridge never counts sockets or sends.
    assert not {name for name, _ in bridge_after if name.startswith("chat_")}
    live = {"loop": "chat-messages", "topic": "chat-messages"}
    assert delta(bridge_after, bridge_before, "kafka_bridge_records_total", **live, outcome="handled") == count
    assert delta(bridge_after, bridge_before, "kafka_bridge_records_total", **live, outcome="retried") == 0
    assert delta(bridge_after, bridge_before, "kafka_bridge_records_total", **live, outcome="dead_lettered") == 0
    assert delta(bridge_after, bridge_before, "kafka_bridge_handle_seconds_count", **live) == count
    # The offline-notifications loop read the same records, in a group of its own.
    stack.wait_loop_caught_up("offline-notifications")
    offline = {"loop": "offline-notifications", "topic": "chat-messages", "outcome": "handled"}
    assert delta(scrape(f"{bridge.http}/metrics"), bridge_before, "kafka_bridge_records_total", **offline) == count

    # Lag comes from librdkafka's statistics (every 5 s): caught up, it is 0 on each partition held.
    group = stack.env()["KAFKA_CONSUMER_GROUP"]

    def lag_reported() -> bool:
        samples = scrape(f"{bridge.http}/metrics")
        lags = [
            v for (name, labels), v in samples.items() if name == "kafka_consumer_lag" and ("group", group) in labels
        ]
        return len(lags) >= 3 and not any(lags)

    wait_until(lag_reported, 20, "no zero lag per partition of the bridge's group")


def test_web_metrics_are_for_loopback_and_the_allowed_networks_only(stack: Stack, two_process_web):
    _proc, base = two_process_web
    address = external_ipv4()
    if address is None:
        pytest.skip("this machine has no non-loopback IPv4 address to reach the server from")
    port = base.rsplit(":", 1)[1]
    # Loopback is always allowed (positive control on the same server).
    assert requests.get(f"{base}/metrics", timeout=10).status_code == 200
    # The same server from this machine's other address (Host stays an allowed host name):
    # the client is that address, in no allowed network.
    from_outside = requests.get(f"http://{address}:{port}/metrics", headers={"Host": "127.0.0.1"}, timeout=10)
    assert from_outside.status_code == 404
    assert from_outside.json() == {"code": "not_found", "detail": "Not found."}
    assert requests.get(f"http://{address}:{port}/healthz", headers={"Host": "127.0.0.1"}, timeout=10).ok

    # A server that lists that address's network answers it.
    proc, allowed_base = stack.start_web(host="0.0.0.0", env={"METRICS_ALLOWED_CIDRS": f"10.9.0.0/16, {address}/32"})
    try:
        allowed_port = allowed_base.rsplit(":", 1)[1]
        allowed = requests.get(f"http://{address}:{allowed_port}/metrics", headers={"Host": "127.0.0.1"}, timeout=10)
        assert allowed.status_code == 200
        assert "chat_messages_sent_total" in allowed.text
    finally:
        proc.terminate()
        stack.procs.remove(proc)


def produce_notification(user_id: str) -> str:
    """Produce a notification record for the user straight to Kafka; return its id."""
    from notifications.events import NOTIFICATIONS, Notification

    notification = Notification(
        id=str(uuid.uuid4()),
        user_id=user_id,
        title="Readiness",
        content="a record the notifications loop stores",
        type="SYSTEM",
        related_entity_id=None,
        read=False,
        created_at=datetime.now(UTC).isoformat(),
    )
    producer = Producer({"bootstrap.servers": require_env("KAFKA_BOOTSTRAP_SERVERS")})
    producer.produce(NOTIFICATIONS.name, key=user_id.encode(), value=notification.encode())
    assert producer.flush(15) == 0
    return notification.id


def test_bridge_readyz_goes_503_while_a_loop_is_stuck_and_200_after(stack: Stack, base: str):
    # A bridge of its own for the notifications loop, in a group of its own (starting at the end).
    group = f"{stack.env()['KAFKA_CONSUMER_GROUP']}-readiness"
    start_group_at_end(group)
    bridge = stack.start_bridge(
        "--loops", "notifications", "--group", group, "--no-relay", env={"BRIDGE_READY_POLL_SECONDS": "2"}
    )
    try:
        assert requests.get(f"{bridge.http}/healthz", timeout=10).json() == {"status": "ok"}

        def ready() -> bool:
            return requests.get(f"{bridge.http}/readyz", timeout=10).status_code == 200

        wait_until(ready, 30, "the bridge never became ready")  # positive control: it joined and polls
        body = requests.get(f"{bridge.http}/readyz", timeout=10).json()
        assert body == {"status": "ok", "loops": {"notifications": 3}}

        user = register(base, "readiness")
        with psycopg.connect(stack.database_url) as conn:
            # The handler's insert waits for this lock: the loop is stuck in its handler and stops polling.
            conn.execute("LOCK TABLE notifications_notification IN ACCESS EXCLUSIVE MODE")
            notification_id = produce_notification(user.id)

            def stuck() -> bool:
                answer = requests.get(f"{bridge.http}/readyz", timeout=10)
                return answer.status_code == 503

            wait_until(stuck, 30, "/readyz stayed 200 while the loop was stuck")
            body = requests.get(f"{bridge.http}/readyz", timeout=10).json()
            assert body["status"] == "unavailable"
            assert body["failing"]["notifications"].startswith("has not polled for ")
            # Alive all the same: a probe that restarts it is a liveness decision, not ours.
            assert requests.get(f"{bridge.http}/healthz", timeout=10).status_code == 200
            conn.rollback()

        wait_until(ready, 30, "/readyz did not come back after the loop went on")

        def stored() -> bool:
            query = "SELECT count(*) FROM notifications_notification WHERE id = %s"
            return stack.query(query, notification_id) == [(1,)]

        wait_until(stored, 30, "the notification held up by the lock was not stored")
        assert requests.get(f"{bridge.http}/nothing", timeout=10).status_code == 404
    finally:
        bridge.terminate()
        stack.procs.remove(bridge)
