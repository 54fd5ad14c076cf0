"""The real processes' logs: JSON lines naming their role, record fields, no tokens, no 4xx noise."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from confluent_kafka import Producer
from websockets.exceptions import InvalidStatus

from tests.support.client import Socket, conversation, register
from tests.support.stack import LOG_DIR, Proc, Stack, require_env

pytestmark = pytest.mark.integration

WARNING_OR_WORSE = {"WARNING", "ERROR", "CRITICAL"}


def json_lines(path: Path, start: int = 0) -> list[dict[str, Any]]:
    """Parse every line of a log from byte `start` as JSON; a line that is not JSON fails the test."""
    entries = []
    for line in path.read_bytes()[start:].decode().splitlines():
        try:
            entries.append(json.loads(line))
        except json.JSONDecodeError:
            raise AssertionError(f"not a JSON line in {path.name}: {line!r}") from None
        assert isinstance(entries[-1], dict), line
    return entries


def wait_for_line(proc: Proc, matches: Any, timeout: float = 60.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for entry in json_lines(proc.log_path):
            if matches(entry):
                return entry
        time.sleep(0.2)
    raise AssertionError(f"no such line in {proc.name}'s log:\n{proc.log_tail()}")


def produce_undecodable(topic: str) -> tuple[int, int]:
    """Produce a record the bridge cannot decode; return its partition and offset."""
    producer = Producer({"bootstrap.servers": require_env("KAFKA_BOOTSTRAP_SERVERS")})
    where: list[tuple[int, int]] = []
    producer.produce(
        topic,
        key=f"garbage-{uuid.uuid4().hex}",
        value=b"not an event",
        on_delivery=lambda err, msg: where.append((msg.partition(), msg.offset())) if err is None else None,
    )
    assert producer.flush(15) == 0 and where
    return where[0]


@pytest.fixture
def json_stack() -> Iterator[tuple[Stack, Proc, Proc, str]]:
    for old in LOG_DIR.glob("logs-*.log"):  # this stack's logs only, from this run only
        old.unlink()
    stack = Stack.create("logs", LOG_FORMAT="json")
    try:
        bridge = stack.start_bridge()
        web, base = stack.start_web()
        yield stack, web, bridge, base
    finally:
        stack.stop()


async def test_every_line_is_json_with_its_role_and_dead_letters_name_the_record(json_stack):
    stack, web, bridge, base = json_stack
    # Traffic through the whole path: REST, a WebSocket each, a message, typing.
    alice, bob = register(base, "alice"), register(base, "bob")
    direct = conversation(alice, bob)
    alice_ws, bob_ws = await alice.ws(), await bob.ws()
    try:
        ack = await alice_ws.send_message(direct["id"], "logged?")
        await bob_ws.wait_type("message.new")
        await alice_ws.send({"type": "typing", "conversationId": direct["id"], "isTyping": True})
        await bob_ws.wait_type("typing", conversationId=direct["id"], isTyping=True)
    finally:
        await alice_ws.close()
        await bob_ws.close()
    assert ack["type"] == "message.ack"
    partition, offset = produce_undecodable("typing-events")

    dead = wait_for_line(bridge, lambda e: e["message"].startswith(f"Dead-lettering typing-events@{partition}/"))
    assert dead["level"] == "ERROR" and dead["logger"] == "kafka_bridge.loop" and dead["role"] == "bridge"
    assert (dead["topic"], dead["partition"], dead["offset"]) == ("typing-events", partition, offset)
    # Stopped, so that the shutdown lines (and anything librdkafka says on closing) are in the logs too.
    stack.stop()
    assert web.popen.returncode == 0 and bridge.popen.returncode == 0

    roles: dict[str, set[str]] = {}
    for proc, role in ((web, "web"), (bridge, "bridge")):
        entries = json_lines(proc.log_path)
        assert len(entries) > 5, proc.log_tail()
        for entry in entries:
            assert {"time", "level", "logger", "role", "message"} <= set(entry), entry
        roles[role] = {e["role"] for e in entries}
    # The outbox relay thread runs in both, and logs as itself.
    assert roles["web"] <= {"web", "relay"} and "web" in roles["web"], roles
    assert roles["bridge"] <= {"bridge", "relay"} and "bridge" in roles["bridge"], roles
    # The access log is among the lines, formatted like the rest.
    web_entries = json_lines(web.log_path)
    assert any(e["logger"] == "daphne.access" and "WSCONNECT /ws/chat/" in e["message"] for e in web_entries)
    assert any(e["logger"] == "daphne.access" and e.get("status") == 201 for e in web_entries)


async def test_tokens_are_never_logged_and_refusals_are_not_warnings(stack, base, make_user):
    user = make_user()
    web = next(p for p in stack.procs if p.name.startswith("web"))
    start = {proc.name: proc.log_path.stat().st_size for proc in stack.procs}
    bad_token = uuid.uuid4().hex + uuid.uuid4().hex[:8]

    # Accepted: the token in the query string (browsers cannot set headers).
    socket = await Socket.open(base, user.token, query=f"?token={user.token}")
    try:
        assert (await socket.request({"type": "ping"}))["type"] == "pong"
    finally:
        await socket.close()
    # Refused: a WebSocket and REST requests with a bad token, and a real token where REST does not read it.
    with pytest.raises(InvalidStatus) as refused:
        await Socket.open(base, bad_token, query=f"?token={bad_token}")
    assert refused.value.response.status_code == 403
    bad = requests.get(f"{base}/api/users/me/", headers={"Authorization": f"Token {bad_token}"}, timeout=15)
    assert bad.status_code == 401
    query = requests.get(f"{base}/api/users/me/?token={user.token}", timeout=15)
    assert query.status_code == 401

    def new_lines() -> list[dict[str, Any]]:
        return json_lines(web.log_path, start[web.name])

    # The control: the refusals reached the server and were logged, at INFO.
    deadline = time.monotonic() + 15
    while not any("/api/users/me/?token=[redacted]" in e["message"] for e in new_lines()):
        assert time.monotonic() < deadline, web.log_tail()
        time.sleep(0.1)
    lines = new_lines()
    unauthorized = [e for e in lines if e["logger"] == "django.request" and e.get("status") == 401]
    assert len(unauthorized) == 2 and {e["level"] for e in unauthorized} == {"INFO"}, unauthorized
    assert any(e["logger"] == "daphne.access" and "WSREJECT /ws/chat/" in e["message"] for e in lines), lines
    assert any(e["logger"] == "daphne.access" and "WSCONNECT /ws/chat/" in e["message"] for e in lines), lines
    assert [e for e in lines if e["level"] in WARNING_OR_WORSE] == []

    for proc in stack.procs:
        log = proc.log_path.read_text(errors="replace")
        assert log, f"{proc.name} wrote no log to search"
        assert user.token not in log, proc.name
        assert bad_token not in log, proc.name
