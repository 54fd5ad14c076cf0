"""Offline delivery by `sync`, presence, and NEW_MESSAGE notifications, end to end."""

import asyncio
import json
import uuid

import pytest
from confluent_kafka import Producer

from tests.support.client import Watermarks, conversation
from tests.support.stack import require_env

pytestmark = pytest.mark.integration


async def sync_all(socket, confirm=True, limit=None):
    """Run the client's resume loop: sync until `more` is false, confirming each batch by watermark."""
    received = []
    held = Watermarks()
    while True:
        frame = {"type": "sync"} if limit is None else {"type": "sync", "limit": limit}
        start = len(socket.of_type("message.new"))
        done = await socket.request(frame)
        assert done["type"] == "sync.done", done
        batch = [f["message"] for f in socket.of_type("message.new")[start : start + done["count"]]]
        assert len(batch) == done["count"]
        received.extend(batch)
        for message in batch:
            held.add(message)
        if confirm:
            for move in held.moves():
                await socket.send(move)
        if not done["more"]:
            return received
        if not confirm:
            return received


async def test_offline_user_gets_a_burst_by_sync_in_order_exactly_once(make_user):
    senders = [make_user(f"s{i}") for i in range(3)]
    offline = make_user("offline")
    group = conversation(senders[0], *senders[1:], offline)
    sockets = [await u.ws() for u in senders]
    try:

        async def burst(socket):  # within the per-connection burst allowance
            for i in range(30):
                await socket.send_message(group["id"], f"{i}")

        await asyncio.gather(*(burst(s) for s in sockets))
        # Once a sender saw the others' 60 live, the bridge is past the burst.
        await sockets[0].wait_for(lambda f: f.get("type") == "message.new", count=60)
    finally:
        for s in sockets:
            await s.close()
    socket = await offline.ws()
    try:
        received = await sync_all(socket, limit=50)
        assert [m["seq"] for m in received] == list(range(1, 91))  # in order, none missing, none twice
        assert len({m["id"] for m in received}) == 90
        again = await socket.request({"type": "sync"})
        assert again == {
            "type": "sync.done",
            "requestId": again["requestId"],
            "count": 0,
            "more": False,
            "conversations": [],
        }
    finally:
        await socket.close()


async def test_sync_without_confirming_sends_the_same_again(make_user, stack):
    alice, bob = make_user("alice"), make_user("bob")
    direct = conversation(alice, bob)
    for i in range(3):
        alice.api(
            "POST", f"/api/conversations/{direct['id']}/messages/", {"content": f"m{i}", "clientMessageId": f"{i}"}
        )
    # Live delivery of these is over before bob connects, so all his message.new frames come from sync.
    stack.wait_loop_caught_up("chat-messages")
    b = await bob.ws()
    try:
        first = await sync_all(b, confirm=False)
        second = await sync_all(b, confirm=False)
        assert [m["id"] for m in first] == [m["id"] for m in second] and len(first) == 3
        bad = await b.request({"type": "sync", "limit": 501})
        assert bad["code"] == "validation_error"
        bad = await b.request({"type": "sync", "limit": "ten"})
        assert bad["code"] == "validation_error"
    finally:
        await b.close()


async def test_offline_recipient_gets_coalesced_new_message_notification(make_user):
    alice, bob = make_user("alice"), make_user("bob")
    direct = conversation(alice, bob)
    a = await alice.ws()
    try:
        for i in range(3):
            await a.send_message(direct["id"], f"while you were away {i}")
    finally:
        await a.close()

    async def notifications():
        return bob.api("GET", "/api/notifications/").json()["results"]

    for _ in range(100):
        items = await notifications()
        if items and items[0]["title"].startswith("3 new"):
            break
        await asyncio.sleep(0.1)
    assert len(items) == 1, items
    (notification,) = items
    assert notification["type"] == "NEW_MESSAGE" and notification["read"] is False
    assert notification["title"] == f"3 new messages from {alice.username}"
    last = alice.api("GET", f"/api/conversations/{direct['id']}/messages/").json()["results"][-1]
    assert notification["relatedEntityId"] == last["id"]
    # Once read, the next message starts a new notification.
    b1, b2 = await bob.ws(), await bob.ws()
    try:
        assert bob.api("POST", f"/api/notifications/{notification['id']}/read/").status_code == 204
        for socket in (b1, b2):  # every socket of the user learns it
            await socket.wait_for(
                lambda f: f.get("type") == "notification"
                and f["notification"]["id"] == notification["id"]
                and f["notification"]["read"] is True
            )
    finally:
        await b1.close()
        await b2.close()
    assert bob.api("GET", "/api/notifications/", unread="true").json()["results"] == []


async def test_online_recipient_gets_no_notification(make_user, stack):
    alice, bob, carol = make_user("alice"), make_user("bob"), make_user("carol")
    group = conversation(alice, bob, carol)
    a, b = await alice.ws(), await bob.ws()  # carol has no socket open
    try:
        ack = await a.send_message(group["id"], "you are here")
        await b.wait_type("message.new")
        # The record is in Kafka (bob got it through the bridge); wait until the
        # offline-notification loop has handled it too.
        await asyncio.to_thread(stack.wait_loop_caught_up, "offline-notifications")
        # The control: the same record gave offline carol her notification.
        (notification,) = carol.api("GET", "/api/notifications/").json()["results"]
        assert notification["type"] == "NEW_MESSAGE"
        assert notification["relatedEntityId"] == ack["message"]["id"]
        assert bob.api("GET", "/api/notifications/").json()["results"] == []
    finally:
        await a.close()
        await b.close()


async def test_a_notification_record_consumed_twice_is_stored_once(make_user, stack):
    user = make_user("carol")
    socket = await user.ws()
    notification_id = str(uuid.uuid4())
    record = {
        "id": notification_id,
        "userId": user.id,
        "title": "From another team",
        "content": "hello",
        "type": "SYSTEM",
        "relatedEntityId": None,
        "read": False,
        "createdAt": "2026-01-01T10:00:00.000Z",
    }
    producer = Producer({"bootstrap.servers": require_env("KAFKA_BOOTSTRAP_SERVERS")})
    for _ in range(2):  # the same record twice, as a redelivery would
        producer.produce("notifications", key=user.id, value=json.dumps(record).encode())
    producer.flush(10)
    try:
        await socket.wait_for(lambda f: f.get("type") == "notification", count=2)
        rows = stack.query("SELECT count(*) FROM notifications_notification WHERE id = %s", notification_id)
        assert rows == [(1,)]
        listed = user.api("GET", "/api/notifications/").json()["results"]
        assert [n["id"] for n in listed] == [notification_id]
    finally:
        await socket.close()


async def test_presence_across_two_web_processes(make_user, stack):
    """A second daphne on the same database and Redis: a socket there counts as online."""
    _proc, other_base = stack.start_web()
    alice, bob = make_user("alice"), make_user("bob")
    direct = conversation(alice, bob)
    bob.base = other_base
    b = await bob.ws()  # bob is online through the other process
    a = await alice.ws()
    try:
        await a.send_message(direct["id"], "cross-process")
        await b.wait_type("message.new")
        await asyncio.to_thread(stack.wait_loop_caught_up, "offline-notifications")
        assert bob.api("GET", "/api/notifications/").json()["results"] == []
        await b.close()
        await asyncio.sleep(0.5)
        await a.send_message(direct["id"], "now offline")
        for _ in range(100):
            if bob.api("GET", "/api/notifications/").json()["results"]:
                break
            await asyncio.sleep(0.1)
        assert len(bob.api("GET", "/api/notifications/").json()["results"]) == 1
    finally:
        await a.close()
