"""The core path, end to end: WebSocket -> daphne -> PostgreSQL -> outbox ->
Kafka -> run_kafka_bridge -> Redis channel layer -> WebSocket."""

import asyncio
import uuid

import pytest

from tests.support.client import conversation

pytestmark = pytest.mark.integration


async def test_direct_message_reaches_recipient_live(make_user):
    alice, bob = make_user("alice"), make_user("bob")
    direct = conversation(alice, bob)
    a, b = await alice.ws(), await bob.ws()
    try:
        ack = await a.send_message(direct["id"], "hello bob")
        assert ack["message"]["status"] == "SENT" and ack["message"]["seq"] == 1
        assert ack["message"]["senderId"] == alice.id
        new = await b.wait_type("message.new")
        assert new["message"] == ack["message"]
        # The sending socket has the message in its ack and gets no repeat.
        await asyncio.sleep(0.5)
        assert a.of_type("message.new") == []
    finally:
        await a.close()
        await b.close()


async def test_group_message_reaches_every_socket_of_every_recipient(make_user):
    alice, bob, carol = make_user("alice"), make_user("bob"), make_user("carol")
    group = conversation(alice, bob, carol, title="team")
    assert group["kind"] == "group"
    sender, sender_other_tab = await alice.ws(), await alice.ws()
    bob_phone, bob_laptop, carol_ws = await bob.ws(), await bob.ws(), await carol.ws()
    sockets = [sender, sender_other_tab, bob_phone, bob_laptop, carol_ws]
    try:
        ack = await sender.send_message(group["id"], "hi all")
        message_id = ack["message"]["id"]
        for socket in [sender_other_tab, bob_phone, bob_laptop, carol_ws]:
            frame = await socket.wait_type("message.new")
            assert frame["message"]["id"] == message_id
        await asyncio.sleep(0.5)
        # Each socket got it exactly once; the sending socket only as its ack.
        for socket in [sender_other_tab, bob_phone, bob_laptop, carol_ws]:
            assert len(socket.of_type("message.new")) == 1
        assert sender.of_type("message.new") == []
    finally:
        for socket in sockets:
            await socket.close()


async def test_outsider_gets_nothing(make_user):
    alice, bob, eve = make_user("alice"), make_user("bob"), make_user("eve")
    direct = conversation(alice, bob)
    with_eve = conversation(alice, eve)
    a, b, e = await alice.ws(), await bob.ws(), await eve.ws()
    try:
        private = (await a.send_message(direct["id"], "private"))["message"]
        # The control: the member gets it live, so the bridge has handled its record.
        (new,) = await b.wait_for(lambda f: f.get("type") == "message.new")
        assert new["message"]["id"] == private["id"]
        # And eve's socket does get what is hers, sent after the private one.
        hers = (await a.send_message(with_eve["id"], "for eve"))["message"]
        await e.wait_for(lambda f: f.get("type") == "message.new" and f["message"]["id"] == hers["id"])
        await asyncio.sleep(0.5)
        assert [f["message"]["id"] for f in e.of_type("message.new")] == [hers["id"]]
    finally:
        for socket in (a, b, e):
            await socket.close()


async def test_idempotent_resend_stores_and_delivers_once(make_user, stack):
    alice, bob = make_user("alice"), make_user("bob")
    direct = conversation(alice, bob)
    a, b = await alice.ws(), await bob.ws()
    try:
        client_id = uuid.uuid4().hex
        first = await a.send_message(direct["id"], "once", client_id)
        second = await a.send_message(direct["id"], "once", client_id)
        assert second["message"] == first["message"]
        # Over REST too: 200 with the original.
        response = alice.api(
            "POST", f"/api/conversations/{direct['id']}/messages/", {"content": "once", "clientMessageId": client_id}
        )
        assert response.status_code == 200 and response.json()["id"] == first["message"]["id"]
        await b.wait_type("message.new")
        await asyncio.sleep(1.0)
        assert len(b.of_type("message.new")) == 1
        rows = stack.query("SELECT count(*) FROM messaging_message WHERE conversation_id = %s", direct["id"])
        assert rows == [(1,)]
    finally:
        await a.close()
        await b.close()


async def test_rest_send_is_delivered_over_websocket(make_user):
    alice, bob = make_user("alice"), make_user("bob")
    direct = conversation(alice, bob)
    b = await bob.ws()
    try:
        response = alice.api(
            "POST", f"/api/conversations/{direct['id']}/messages/", {"content": "via rest", "clientMessageId": "r1"}
        )
        assert response.status_code == 201, response.text
        new = await b.wait_type("message.new")
        assert new["message"] == response.json()
    finally:
        await b.close()


async def test_seq_under_concurrent_senders(make_user):
    users = [make_user(f"s{i}") for i in range(4)]
    group = conversation(users[0], *users[1:])
    sockets = [await u.ws() for u in users]
    per_sender = 25
    try:

        async def burst(socket):
            return [(await socket.send_message(group["id"], f"m{i}"))["message"]["seq"] for i in range(per_sender)]

        results = await asyncio.gather(*(burst(s) for s in sockets))
        seqs = sorted(seq for r in results for seq in r)
        assert seqs == list(range(1, per_sender * len(users) + 1))
        for r in results:
            assert r == sorted(r)  # each sender's messages in its own order
        history = users[0].api("GET", f"/api/conversations/{group['id']}/messages/", limit=200).json()["results"]
        assert [m["seq"] for m in history] == list(range(1, 101))
        # Every socket sees every other sender's messages live, each sender's in seq order.
        for socket, user in zip(sockets, users, strict=True):
            frames = await socket.wait_for(lambda f: f.get("type") == "message.new", count=per_sender * 3)
            assert len(frames) == per_sender * 3
            for other in users:
                mine = [f["message"]["seq"] for f in frames if f["message"]["senderId"] == other.id]
                assert mine == sorted(mine)
                assert other.id != user.id or mine == []
    finally:
        for s in sockets:
            await s.close()


async def test_history_paging(make_user):
    alice, bob = make_user("alice"), make_user("bob")
    direct = conversation(alice, bob)
    for i in range(7):
        response = alice.api(
            "POST", f"/api/conversations/{direct['id']}/messages/", {"content": f"m{i}", "clientMessageId": f"h{i}"}
        )
        assert response.status_code == 201
    path = f"/api/conversations/{direct['id']}/messages/"

    def seqs(**params):
        response = bob.api("GET", path, **params)
        assert response.status_code == 200, response.text
        return [m["seq"] for m in response.json()["results"]]

    assert seqs() == [1, 2, 3, 4, 5, 6, 7]
    assert seqs(after_seq=5) == [6, 7]
    assert seqs(limit=3) == [1, 2, 3]
    assert seqs(before_seq=6, limit=2) == [4, 5]
    assert seqs(after_seq=2, before_seq=5) == [3, 4]


async def test_conversation_listing_and_detail(make_user):
    alice, bob, carol = make_user("alice"), make_user("bob"), make_user("carol")
    direct = conversation(alice, bob)
    again = alice.api("POST", "/api/conversations/", {"participantIds": [bob.id]})
    assert again.status_code == 200 and again.json()["id"] == direct["id"]
    from_bob = bob.api("POST", "/api/conversations/", {"participantIds": [alice.id]})
    assert from_bob.status_code == 200 and from_bob.json()["id"] == direct["id"]
    group = alice.api("POST", "/api/conversations/", {"participantIds": [bob.id, carol.id], "title": "trio"})
    assert group.status_code == 201
    listing = alice.api("GET", "/api/conversations/").json()
    assert {c["id"] for c in listing} == {direct["id"], group.json()["id"]}
    detail = carol.api("GET", f"/api/conversations/{group.json()['id']}/").json()
    assert detail["kind"] == "group" and detail["title"] == "trio"
    assert sorted(detail["participantIds"]) == sorted([alice.id, bob.id, carol.id])
    me = alice.api("GET", "/api/users/me/").json()
    # Version 1.1 adds displayName; 1.3 presence (no socket of hers open, none ever).
    assert me == {"id": alice.id, "username": alice.username, "displayName": "", "online": False, "lastSeenAt": None}
