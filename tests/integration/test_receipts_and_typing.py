"""Receipts and typing through the real path: the recipient's frame -> daphne ->
PostgreSQL -> outbox -> Kafka -> bridge -> channel layer -> the sender's socket."""

import asyncio

import pytest

from tests.support.client import conversation

pytestmark = pytest.mark.integration


async def test_delivered_and_read_reach_the_sender_in_a_direct_conversation(make_user):
    alice, bob = make_user("alice"), make_user("bob")
    direct = conversation(alice, bob)
    a, a_tab, b = await alice.ws(), await alice.ws(), await bob.ws()
    try:
        ack = await a.send_message(direct["id"], "hi")
        message = (await b.wait_type("message.new"))["message"]
        await b.send({"type": "message.received", "messageIds": [message["id"]]})
        for socket in (a, a_tab):  # every socket of the sender
            delivered = await socket.wait_type("message.status", status="DELIVERED")
            assert delivered["messageId"] == ack["message"]["id"]
            assert delivered["userId"] == bob.id and delivered["conversationId"] == direct["id"]
        await b.send({"type": "message.read", "conversationId": direct["id"], "upToSeq": message["seq"]})
        read = await a.wait_type("message.status", status="READ")
        assert read["userId"] == bob.id and read["upToSeq"] == 1 and read["messageId"] == message["id"]
        history = alice.api("GET", f"/api/conversations/{direct['id']}/messages/").json()["results"]
        assert history[0]["status"] == "READ"
        assert b.of_type("message.status") == []  # receipts go to the sender only
    finally:
        for s in (a, a_tab, b):
            await s.close()


async def test_group_receipts_are_per_recipient_with_aggregate_status(make_user):
    alice, bob, carol = make_user("alice"), make_user("bob"), make_user("carol")
    group = conversation(alice, bob, carol)
    a, b, c = await alice.ws(), await bob.ws(), await carol.ws()
    path = f"/api/conversations/{group['id']}/messages/"
    try:
        ack = await a.send_message(group["id"], "team")
        message_id = ack["message"]["id"]
        await b.wait_type("message.new")
        await c.wait_type("message.new")
        await b.send({"type": "message.received", "messageIds": [message_id]})
        await a.wait_type("message.status", status="DELIVERED", userId=bob.id)
        assert alice.api("GET", path).json()["results"][0]["status"] == "SENT"
        await c.send({"type": "message.received", "messageIds": [message_id]})
        await a.wait_type("message.status", status="DELIVERED", userId=carol.id)
        assert alice.api("GET", path).json()["results"][0]["status"] == "DELIVERED"
        # Over REST this time: 204, and the sender's socket learns it.
        assert bob.api("POST", f"/api/conversations/{group['id']}/read/", {"upToSeq": 1}).status_code == 204
        await a.wait_type("message.status", status="READ", userId=bob.id)
        assert alice.api("GET", path).json()["results"][0]["status"] == "DELIVERED"
        await c.send({"type": "message.read", "conversationId": group["id"], "upToSeq": 1})
        await a.wait_type("message.status", status="READ", userId=carol.id)
        assert alice.api("GET", path).json()["results"][0]["status"] == "READ"
    finally:
        for s in (a, b, c):
            await s.close()


async def test_watermark_is_one_event_per_sender_and_never_moves_back(make_user):
    alice, bob, carol = make_user("alice"), make_user("bob"), make_user("carol")
    group = conversation(alice, bob, carol)
    a, b, c = await alice.ws(), await bob.ws(), await carol.ws()
    try:
        for i in range(5):
            await a.send_message(group["id"], f"a{i}")
        await c.send_message(group["id"], "c0")
        await b.wait_for(lambda f: f.get("type") == "message.new", count=6)
        listing = {x["id"]: x for x in bob.api("GET", "/api/conversations/").json()}
        assert listing[group["id"]]["unreadCount"] == 6
        assert listing[group["id"]]["lastMessage"]["content"] == "c0"
        await b.send({"type": "message.read", "conversationId": group["id"], "upToSeq": 6})
        await a.wait_type("message.status", status="READ", upToSeq=6)
        await c.wait_type("message.status", status="READ", upToSeq=6)
        await b.send({"type": "message.read", "conversationId": group["id"], "upToSeq": 2})  # backwards
        await asyncio.sleep(1.0)
        assert len(a.of_type("message.status")) == 1  # five messages, one event
        assert len(c.of_type("message.status")) == 1
        assert b.of_type("error") == []
    finally:
        for s in (a, b, c):
            await s.close()
    listing = {x["id"]: x for x in bob.api("GET", "/api/conversations/").json()}
    assert listing[group["id"]]["unreadCount"] == 0


async def test_receipt_bad_input(make_user, stack):
    alice, bob, eve = make_user("alice"), make_user("bob"), make_user("eve")
    direct = conversation(alice, bob)
    a, b, e = await alice.ws(), await bob.ws(), await eve.ws()
    try:
        ack = await a.send_message(direct["id"], "hi")
        message_id = ack["message"]["id"]
        for frame in (
            {"type": "message.received"},
            {"type": "message.received", "messageIds": []},
            {"type": "message.received", "messageIds": "x"},
            {"type": "message.received", "messageIds": [1]},
            {"type": "message.read", "conversationId": direct["id"], "upToSeq": "1"},
            {"type": "message.read", "conversationId": direct["id"], "upToSeq": -3},
        ):
            reply = await b.request(frame)
            assert reply["type"] == "error" and reply["code"] == "validation_error", (frame, reply)
        # Someone else's message: ignored; someone else's conversation: not_found.
        await e.send({"type": "message.received", "messageIds": [message_id]})
        reply = await e.request({"type": "message.read", "conversationId": direct["id"], "upToSeq": 1})
        assert reply["code"] == "not_found"
        assert eve.api("POST", f"/api/conversations/{direct['id']}/read/", {"upToSeq": 1}).status_code == 404
        assert bob.api("POST", f"/api/conversations/{direct['id']}/read/", {"upToSeq": "x"}).status_code == 400
        await asyncio.sleep(1.0)
        assert a.of_type("message.status") == []
        rows = stack.query("SELECT delivered_at, read_at FROM messaging_receipt WHERE message_id = %s", message_id)
        assert rows == [(None, None)]
        # Confirming twice tells the sender once.
        await b.send({"type": "message.received", "messageIds": [message_id]})
        await b.send({"type": "message.received", "messageIds": [message_id, message_id]})
        await a.wait_type("message.status", status="DELIVERED")
        await asyncio.sleep(1.0)
        assert len(a.of_type("message.status")) == 1
    finally:
        for s in (a, b, e):
            await s.close()


async def test_typing_reaches_others_throttled_and_never_echoes(make_user):
    alice, bob, carol = make_user("alice"), make_user("bob"), make_user("carol")
    group = conversation(alice, bob, carol)
    a, a_tab, b, c = await alice.ws(), await alice.ws(), await bob.ws(), await carol.ws()
    try:
        for _ in range(5):  # a burst of keystrokes within 2 seconds
            await a.send({"type": "typing", "conversationId": group["id"], "isTyping": True})
        first = await b.wait_type("typing", isTyping=True)
        assert first["userId"] == alice.id and first["conversationId"] == group["id"]
        assert isinstance(first["timestamp"], int)
        await c.wait_type("typing", isTyping=True)
        await a.send({"type": "typing", "conversationId": group["id"], "isTyping": False})
        await b.wait_type("typing", isTyping=False)
        await c.wait_type("typing", isTyping=False)
        await asyncio.sleep(1.0)
        assert len(b.of_type("typing")) == 2  # one true (throttled), one false
        assert a.of_type("typing") == [] and a_tab.of_type("typing") == []  # no echo to the typist
    finally:
        for s in (a, a_tab, b, c):
            await s.close()


async def test_typing_true_again_after_the_interval_and_false_on_close(make_user):
    alice, bob = make_user("alice"), make_user("bob")
    direct = conversation(alice, bob)
    a, b = await alice.ws(), await bob.ws()
    try:
        await a.send({"type": "typing", "conversationId": direct["id"], "isTyping": True})
        await b.wait_type("typing", isTyping=True)
        await asyncio.sleep(2.2)
        await a.send({"type": "typing", "conversationId": direct["id"], "isTyping": True})
        await b.wait_for(lambda f: f.get("type") == "typing" and f["isTyping"], count=2)
        await a.close()  # closes while typing
        stopped = await b.wait_type("typing", isTyping=False)
        assert stopped["userId"] == alice.id
        bad = await b.request({"type": "typing", "conversationId": direct["id"], "isTyping": "yes"})
        assert bad["code"] == "validation_error"
    finally:
        await b.close()
