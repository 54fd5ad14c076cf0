"""kafka_status and the staff page against the real broker, checked against Kafka's own ConsumerGroupCommand."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator

import pytest
import requests
from confluent_kafka import Consumer, Producer, TopicPartition
from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import reverse

from kafka_bridge.models import OutboxRecord
from kafka_bridge.operate.dead_letters import read_dead_letters
from kafka_bridge.operate.pages import parse_ends
from messaging import services as messaging
from messaging.events import TYPING_EVENTS
from tests.support.client import User as ChatUser
from tests.support.client import conversation, register
from tests.support.stack import ROOT, Stack, free_port, require_env
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration

BRIDGE_LOOPS = {
    "chat-bridge-chat-messages",
    "chat-bridge-message-status-events",
    "chat-bridge-typing-events",
    "chat-bridge-notifications",
}


@pytest.fixture(scope="module")
def status_stack() -> Iterator[Stack]:
    # A stack of its own: the test stops its bridge to make lag, which the shared one must not see.
    stack = Stack.create("status")
    try:
        stack.bridge = stack.start_bridge()  # type: ignore[attr-defined]
        _web, stack.base = stack.start_web()  # type: ignore[attr-defined]
        yield stack
    finally:
        stack.stop()


def group_of(stack: Stack) -> str:
    return stack.env()["KAFKA_CONSUMER_GROUP"]


def status_json(stack: Stack, *args: str) -> dict:
    return json.loads(stack.manage("kafka_status", "--json", *args))


def group_in(status: dict, group: str) -> dict:
    (found,) = [g for g in status["groups"] if g["group"] == group]
    return found


def kafka_tool_describe(*groups: str) -> dict[tuple[str, str, int], tuple[str, str]]:
    """Run Kafka's ConsumerGroupCommand --describe; return {(group, topic, partition): (LAG, CLIENT-ID)}."""
    args = [arg for group in groups for arg in ("--group", group)]
    result = subprocess.run(
        [
            str(ROOT / "scripts" / "kafka.sh"),
            "topics-cli",
            "org.apache.kafka.tools.consumer.group.ConsumerGroupCommand",
            "--bootstrap-server",
            require_env("KAFKA_BOOTSTRAP_SERVERS"),
            "--describe",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    rows: dict[tuple[str, str, int], tuple[str, str]] = {}
    header: list[str] = []
    for line in result.stdout.splitlines():
        cells = line.split()
        if cells[:1] == ["GROUP"]:
            header = cells
        elif header and len(cells) == len(header) and cells[0] in groups:
            row = dict(zip(header, cells, strict=True))
            rows[(row["GROUP"], row["TOPIC"], int(row["PARTITION"]))] = (row["LAG"], row["CLIENT-ID"])
    assert rows, result.stdout + result.stderr
    return rows


def chat_ends() -> dict[int, int]:
    consumer = Consumer({"bootstrap.servers": require_env("KAFKA_BOOTSTRAP_SERVERS"), "group.id": "status-probe"})
    try:
        return {p: consumer.get_watermark_offsets(TopicPartition("chat-messages", p), timeout=10)[1] for p in range(3)}
    finally:
        consumer.close()


def send(user: ChatUser, conversation_id: str, count: int) -> None:
    for _ in range(count):
        client_id = uuid.uuid4().hex
        response = user.api(
            "POST", f"/api/conversations/{conversation_id}/messages/", {"content": "hi", "clientMessageId": client_id}
        )
        assert response.status_code == 201, response.text


def test_lag_equals_what_kafkas_own_tool_prints(status_stack):
    stack = status_stack
    group = group_of(stack)
    offline = group + "-offline-notifications"
    alice, bob = register(stack.base, "alice"), register(stack.base, "bob")  # type: ignore[attr-defined]
    direct = conversation(alice, bob)

    # While the bridge runs, both groups catch up, and each loop is named in its group.
    send(alice, direct["id"], 4)

    def caught_up():
        status = status_json(stack)
        main, other = group_in(status, group), group_in(status, offline)
        chat = [p for p in main["partitions"] if p["topic"] == "chat-messages"]
        done = sum(p["endOffset"] for p in chat) > 0 and main["lag"] == 0 and other["lag"] == 0
        return status if done and set(main["members"]) == BRIDGE_LOOPS else None

    try:
        lag_against_kafkas_tool(stack, group, offline, alice, direct, caught_up)
    finally:
        if not stack.bridge.alive:  # type: ignore[attr-defined]
            stack.bridge = stack.start_bridge()  # type: ignore[attr-defined]


def lag_against_kafkas_tool(stack, group, offline, alice, direct, caught_up):
    status = wait_until(caught_up, what="the bridge to catch up")
    assert group_in(status, offline)["members"] == ["chat-bridge-offline-notifications"]
    running = kafka_tool_describe(group, offline)
    assert {client for (g, _t, _p), (_lag, client) in running.items() if g == group} == BRIDGE_LOOPS

    # With the bridge stopped, what is sent meanwhile is lag, on both groups that read chat-messages.
    stack.bridge.terminate()  # type: ignore[attr-defined]
    before = chat_ends()
    send(alice, direct["id"], 5)
    wait_until(lambda: sum(chat_ends().values()) == sum(before.values()) + 5, what="the records to reach Kafka")

    status = status_json(stack)
    kafka = kafka_tool_describe(group, offline)
    for name in (group, offline):
        mine = group_in(status, name)
        assert mine["members"] == [] and mine["state"] == "EMPTY"
        chat = {p["partition"]: p for p in mine["partitions"] if p["topic"] == "chat-messages"}
        assert sum(p["lag"] for p in chat.values()) == 5
        assert {p: chat[p]["lag"] for p in chat} == {p: chat_ends()[p] - before[p] for p in chat}
        # Partition by partition, the same lag as Kafka's own tool.
        for p in mine["partitions"]:
            lag, _client = kafka[(name, p["topic"], p["partition"])]
            assert lag == ("-" if p["lag"] is None else str(p["lag"])), (name, p)
    assert any(p["lag"] for p in group_in(status, group)["partitions"])

    # The table for people says the same.
    table = stack.manage("kafka_status")
    assert f"{group}: EMPTY, lag {group_in(status, group)['lag']}" in table


def test_unreachable_broker_exits_1_naming_the_address_once(status_stack):
    # Positive control: the same command against the real broker.
    ok = subprocess.run(
        [sys.executable, "manage.py", "kafka_status"],
        cwd=ROOT,
        env=status_stack.env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert ok.returncode == 0, ok.stderr
    assert f"Broker {require_env('KAFKA_BOOTSTRAP_SERVERS')}: reachable" in ok.stdout

    address = f"127.0.0.1:{free_port()}"  # nothing listens there
    result = subprocess.run(
        [sys.executable, "manage.py", "kafka_status", "--timeout", "2"],
        cwd=ROOT,
        env={**status_stack.env(), "KAFKA_BOOTSTRAP_SERVERS": address},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert f"Kafka broker at {address} is unreachable" in result.stderr
    output = (result.stdout + result.stderr).strip().splitlines()
    assert len(output) <= 3, output
    assert not any(re.match(r"%\d\|", line) for line in output), output  # no librdkafka log lines


### The staff page ###

User = get_user_model()
STATUS = "/admin/kafka/"


def staff_client(client, *, superuser: bool = False):
    name = f"staff-{uuid.uuid4().hex[:8]}"
    user = User.objects.create_user(username=name, password="x", is_staff=True, is_superuser=superuser)
    client.force_login(user)
    return client


def typing_dead_letters_waiting(client) -> int:
    status = client.get(STATUS).context["status"]
    (count,) = [d for d in status.dead_letters if d.topic == TYPING_EVENTS.name]
    return count.waiting


def produce_garbage(count: int) -> None:
    producer = Producer({"bootstrap.servers": require_env("KAFKA_BOOTSTRAP_SERVERS")})
    for i in range(count):
        producer.produce(TYPING_EVENTS.name, key=f"garbage-{i}", value=b"not a typing event")
    assert producer.flush(10) == 0


def typing_ends() -> dict[int, int]:
    consumer = Consumer({"bootstrap.servers": require_env("KAFKA_BOOTSTRAP_SERVERS"), "group.id": "status-probe"})
    try:
        return {
            p: consumer.get_watermark_offsets(TopicPartition(TYPING_EVENTS.name, p), timeout=10)[1] for p in range(3)
        }
    finally:
        consumer.close()


def test_staff_page_renders_against_the_real_broker(status_stack, client, db, settings):
    settings.KAFKA_CONSUMER_GROUP = group_of(status_stack)
    # Refused to a user who is not staff...
    client.force_login(User.objects.create_user(username="plain", password="x"))
    response = client.get(STATUS)
    assert response.status_code == 302 and response["Location"].startswith(reverse("admin:login"))
    # ...shown to staff.
    staff = staff_client(client)
    alice = User.objects.create_user(username="alice", password="x")
    bob = User.objects.create_user(username="bob", password="x")
    direct, _ = messaging.conversation_create(creator=alice, participant_ids=[bob.pk])
    for i in range(3):
        messaging.message_send(sender=alice, conversation_id=direct.pk, content=f"m{i}", client_message_id=f"c{i}")

    response = staff.get(STATUS)
    assert response.status_code == 200
    status = response.context["status"]
    page = response.content.decode()
    assert status.reachable and f"{require_env('KAFKA_BOOTSTRAP_SERVERS')}" in page
    assert {t.name for t in status.topics} >= {"chat-messages", "chat-messages.DLT", "typing-events.DLT"}
    main = next(g for g in status.groups if g.group == group_of(status_stack))
    assert f'data-group="{main.group}"' in page and "chat-bridge-typing-events" in page
    assert len(main.partitions) == 12  # four topics of three partitions
    # No relay runs in this process: the sends wait in the outbox.
    depth = OutboxRecord.objects.count()
    assert depth >= 3 and status.outbox_depth == depth and f'id="outbox-depth">{depth} records' in page
    # The last minutes' messages (this one, or the one before when the minute just turned).
    assert sum(row["messages"] for row in response.context["throughput"]) == 3
    # Staff who are not superusers see no replay button and cannot replay.
    assert 'class="button replay"' not in page
    assert staff.get(reverse("admin-kafka-replay", args=[TYPING_EVENTS.name])).status_code == 403
    # The admin's home page links the page.
    assert f'href="{STATUS}"' in staff.get(reverse("admin:index")).content.decode()


LOGGED_IN_STAFF = """
from importlib import import_module
from django.conf import settings
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY, get_user_model
user = get_user_model().objects.create_user(username="ops-{name}", password="x", is_staff={staff})
session = import_module(settings.SESSION_ENGINE).SessionStore()
session.update({{SESSION_KEY: str(user.pk), HASH_SESSION_KEY: user.get_session_auth_hash(),
                BACKEND_SESSION_KEY: settings.AUTHENTICATION_BACKENDS[0]}})
session.create()
print(settings.SESSION_COOKIE_NAME, session.session_key)
"""


def session_cookie(stack: Stack, *, staff: bool) -> dict[str, str]:
    """Log a new user in on the stack's database; return the session cookie."""
    out = stack.manage("shell", "-c", LOGGED_IN_STAFF.format(name=uuid.uuid4().hex[:8], staff=staff))
    name, key = out.strip().splitlines()[-1].split()
    return {name: key}


def test_staff_page_is_served_by_the_web_process(status_stack):
    page = f"{status_stack.base}{STATUS}"  # type: ignore[attr-defined]
    refused = requests.get(page, cookies=session_cookie(status_stack, staff=False), allow_redirects=False, timeout=30)
    assert refused.status_code == 302 and refused.headers["Location"].startswith("/admin/login/")
    staff = session_cookie(status_stack, staff=True)
    response = requests.get(page, cookies=staff, allow_redirects=False, timeout=30)
    assert response.status_code == 200, response.text[:500]
    assert require_env("KAFKA_BOOTSTRAP_SERVERS") in response.text
    assert f'data-group="{group_of(status_stack)}"' in response.text
    # The running bridge's loops, by name (once they have joined, should the bridge have just started).
    wait_until(
        lambda: "chat-bridge-chat-messages" in requests.get(page, cookies=staff, timeout=30).text,
        what="the bridge's loops in the page",
    )


def test_replay_button_replays_the_dead_letters_it_confirmed(status_stack, client, db):
    admin = staff_client(client, superuser=True)
    before = typing_dead_letters_waiting(admin)
    # Records the bridge cannot decode end up in typing-events.DLT.
    produce_garbage(2)
    wait_until(lambda: typing_dead_letters_waiting(admin) >= before + 2, what="the dead letters")
    page = admin.get(STATUS).content.decode()
    replay_url = reverse("admin-kafka-replay", args=[TYPING_EVENTS.name])
    assert f'href="{replay_url}"' in page

    confirm = admin.get(replay_url)
    assert confirm.status_code == 200
    count = confirm.context["count"]
    assert count >= before + 2
    ends = parse_ends(confirm.context["ends"])
    confirmed = {
        (w.partition, w.offset) for w in read_dead_letters(TYPING_EVENTS) if w.offset < ends.get(w.partition, 0)
    }
    assert len(confirmed) == count
    assert f"{TYPING_EVENTS.name}[" in confirm.content.decode()  # where each came from
    ends_before = typing_ends()

    # Without the CSRF token, nothing happens.
    csrf_checked = Client(enforce_csrf_checks=True)
    csrf_checked.force_login(confirm.wsgi_request.user)
    refused = csrf_checked.post(replay_url, {"ends": confirm.context["ends"]})
    assert refused.status_code == 403 and typing_ends() == ends_before
    # A malformed confirmation or an unknown topic replays nothing either.
    response = admin.post(replay_url, {"ends": "0:x"}, follow=True)
    assert [str(m) for m in response.context["messages"]] == ["The confirmation was malformed; nothing was replayed."]
    assert admin.post(reverse("admin-kafka-replay", args=["nope"]), {"ends": "0:1"}).status_code == 404
    assert typing_ends() == ends_before

    response = admin.post(replay_url, {"ends": confirm.context["ends"]}, follow=True)
    assert response.redirect_chain == [(STATUS, 302)]
    assert [str(m) for m in response.context["messages"]] == [
        f"Replayed {count} dead letter(s) to {TYPING_EVENTS.name}."
    ]
    ends_after = typing_ends()
    assert sum(ends_after.values()) - sum(ends_before.values()) == count
    # What the confirmation showed is no longer waiting (the bridge may park the garbage again, at new offsets).
    still = {(w.partition, w.offset) for w in read_dead_letters(TYPING_EVENTS)}
    assert not still & confirmed
