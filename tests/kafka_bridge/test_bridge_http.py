"""The bridge's HTTP endpoint and readiness, and the lag it reads from librdkafka's statistics.

The real path (a running bridge, a stuck loop, the scrape after traffic) is in
tests/integration/test_metrics.py; these pin the rules themselves.
"""

from __future__ import annotations

import asyncio
import json
import time

from confluent_kafka import TopicPartition
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from kafka_bridge.consume.driver import LoopDriver
from kafka_bridge.consume.probes import BridgeHttp
from kafka_bridge.consume.watchers import ReadinessWatch
from kafka_bridge.metrics import LagFromStatistics, start_counting
from messaging import metrics as messaging_metrics
from messaging.events import CHAT_MESSAGES


async def ignore(_payload, _info) -> None:
    return None


def a_loop(name: str = "chat-messages") -> LoopDriver:
    return LoopDriver(CHAT_MESSAGES, ignore, dead_letter_producer=None, name=name)  # type: ignore[arg-type]


def test_a_loop_is_ready_only_while_it_polls_and_holds_partitions():
    clock = [1000.0]
    watch = ReadinessWatch(clock=lambda: clock[0])
    now = 1001.0
    assert watch.reason(now, 30) == "has not polled yet"
    watch.polled()
    assert watch.reason(now, 30).startswith("holds no partition")
    watch.assigned([TopicPartition("chat-messages", 0)])
    assert watch.reason(now, 30) is None  # ready
    assert watch.reason(now + 45, 30) == "has not polled for 46s"
    watch.stopped = True
    assert watch.reason(now, 30) == "stopped"


async def request(port: int, raw: bytes) -> tuple[int, bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(raw)
    await writer.drain()
    answer = await asyncio.wait_for(reader.read(), 10)
    writer.close()
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split(b" ")[1]), body


async def test_the_endpoint_answers_health_readiness_metrics_and_refuses_the_rest():
    ready, stuck = a_loop("chat-messages"), a_loop("typing-events")
    for loop in (ready, stuck):
        loop.readiness.last_poll = time.monotonic()
        loop.readiness.assignment = {("chat-messages", 0), ("chat-messages", 1)}
    http = BridgeHttp([ready, stuck], max_poll_gap=30)
    _host, port = await http.start("127.0.0.1", 0)
    try:
        assert await request(port, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n") == (200, b'{"status": "ok"}')
        status, body = await request(port, b"GET /readyz HTTP/1.1\r\n\r\n")
        assert (status, json.loads(body)) == (200, {"status": "ok", "loops": {"chat-messages": 2, "typing-events": 2}})
        stuck.readiness.last_poll = time.monotonic() - 31
        status, body = await request(port, b"GET /readyz?verbose=1 HTTP/1.1\r\n\r\n")
        assert status == 503
        assert json.loads(body) == {"status": "unavailable", "failing": {"typing-events": "has not polled for 31s"}}

        status, body = await request(port, b"GET /metrics HTTP/1.1\r\n\r\n")
        assert status == 200 and b"# TYPE kafka_bridge_records_total counter" in body
        # Each loop's readiness as /readyz just said it, read when scraped.
        assert b'kafka_bridge_loop_ready{loop="chat-messages"} 1.0' in body
        assert b'kafka_bridge_loop_ready{loop="typing-events"} 0.0' in body
        stuck.readiness.last_poll = time.monotonic()
        _status, body = await request(port, b"GET /metrics HTTP/1.1\r\n\r\n")
        assert b'kafka_bridge_loop_ready{loop="typing-events"} 1.0' in body
        assert await request(port, b"HEAD /metrics HTTP/1.1\r\n\r\n") == (200, b"")

        status, body = await request(port, b"GET /admin HTTP/1.1\r\n\r\n")
        assert (status, json.loads(body)) == (404, {"code": "not_found", "detail": "Not found."})
        status, body = await request(port, b"POST /readyz HTTP/1.1\r\n\r\n")
        assert status == 405 and json.loads(body)["code"] == "method_not_allowed"
        status, body = await request(port, b"nonsense\r\n\r\n")
        assert (status, json.loads(body)) == (400, {"code": "bad_request", "detail": "Bad request."})
    finally:
        await http.close()


def test_the_bridge_lists_its_own_series_and_not_the_webs():
    # The bridge process imports messaging, and with it the web's metrics.
    assert messaging_metrics.WS_CONNECTIONS is not None
    status, _type, body = BridgeHttp([], max_poll_gap=30).answer("GET", "/metrics")
    assert status == 200
    families = text_string_to_metric_families(body.decode())
    names = {family.name.removesuffix("_created") for family in families}
    bridge = {
        "kafka_bridge_records",
        "kafka_bridge_handle_seconds",
        "kafka_bridge_consumer_restarts",
        "kafka_consumer_lag",
        "kafka_producer_errors",
        "kafka_bridge_loop_ready",
    }
    assert bridge <= names
    assert "process_cpu_seconds" in names  # the bridge process's own
    assert not {name for name in names if name.startswith("chat_")}, sorted(names)
    assert names <= bridge | {name for name in names if name.startswith(("process_", "python_"))}


def lag(group: str, partition: str) -> float | None:
    labels = {"group": group, "topic": "chat-messages", "partition": partition}
    return REGISTRY.get_sample_value("kafka_consumer_lag", labels)


def statistics(partitions: dict[str, int]) -> str:
    return json.dumps(
        {"topics": {"chat-messages": {"partitions": {p: {"consumer_lag": v} for p, v in partitions.items()}}}}
    )


def test_lag_comes_from_the_statistics_for_the_partitions_held():
    callback = LagFromStatistics("lag-group", "chat-messages")
    callback(statistics({"0": 4, "1": 0, "2": -1, "-1": 7}))
    assert (lag("lag-group", "0"), lag("lag-group", "1")) == (4, 0)
    assert lag("lag-group", "2") is None  # librdkafka does not know it yet
    assert lag("lag-group", "-1") is None  # its internal unassigned partition
    callback(statistics({"1": 3}))  # partition 0 went to another bridge
    assert (lag("lag-group", "0"), lag("lag-group", "1")) == (None, 3)
    callback("not json")  # logged, nothing changes
    assert lag("lag-group", "1") == 3
    callback.forget()
    assert lag("lag-group", "1") is None


def test_a_loops_counters_are_shown_at_zero_before_its_first_record():
    def sample(name: str, **labels: str) -> float | None:
        return REGISTRY.get_sample_value(name, {"loop": "never-ran", "topic": "chat-messages", **labels})

    assert sample("kafka_bridge_records_total", outcome="dead_lettered") is None
    start_counting("never-ran", "chat-messages")
    for outcome in ("handled", "retried", "dead_lettered"):
        assert sample("kafka_bridge_records_total", outcome=outcome) == 0
    assert sample("kafka_bridge_consumer_restarts_total") == 0
