"""Conversations that change (contract 1.3) through the real path: REST or WebSocket -> PostgreSQL ->
outbox -> Kafka -> bridge -> channel layer -> the members' open sockets, by the membership at each seq."""

import asyncio
import uuid

import pytest

from tests.support.client import conversation, register

pytestmark = pytest.mark.integration


def new_of(socket, **fields) -> list[dict]:
    return [
        f["message"] for f in socket.of_type("message.new") if all(f["message"].get(k) == v for k, v in fields.items())
    ]


async def wait_new(socket, **fields) -> dict:
    frame = await socket.wait_for(
        lambda f: f.get("type") == "message.new" and all(f["message"].get(k) == v for k, v in fields.items())
    )
    return frame[0]["message"]


def history(user, conversation_id) -> list[dict]:
    response = user.api("GET", f"/api/conversations/{conversation_id}/messages/", limit=200)
    assert response.status_code == 200, response.text
    return response.json()["results"]


async def sync(socket) -> tuple[list[dict], dict]:
    before = len(socket.of_type("message.new"))
    done = await socket.request({"type": "sync"})
    assert done["type"] == "sync.done", done
    return [f["message"] for f in socket.of_type("message.new")[before:]], done


async def test_an_added_member_gets_the_conversation_live_from_joining_on(make_user):
    alice, bob, carol, dan = make_user("alice"), make_user("bob"), make_user("carol"), make_user("dan")
    group = conversation(alice, bob, dan, title="three")
    a, b, c = await alice.ws(), await bob.ws(), await carol.ws()
    try:
        await a.send_message(group["id"], "before carol")
        await wait_new(b, seq=1)
        response = alice.api("POST", f"/api/conversations/{group['id']}/participants/", {"userIds": [carol.id]})
        assert response.status_code == 200, response.text
        roles = {p["id"]: (p["role"], p["joinedSeq"]) for p in response.json()["participants"]}
        assert roles == {alice.id: ("admin", 1), bob.id: ("member", 1), dan.id: ("member", 1), carol.id: ("member", 2)}
        # Carol's open socket gets the event and what follows at once, without reconnecting.
        added = await wait_new(c, kind="member_added")
        assert added["seq"] == 2 and added["meta"] == {"userIds": [carol.id]}
        assert (await wait_new(b, kind="member_added"))["content"] == f"{alice.username} added {carol.username}"
        await a.send_message(group["id"], "welcome")
        assert (await wait_new(c, seq=3))["content"] == "welcome"
        await b.send_message(group["id"], "hi carol")
        await wait_new(c, seq=4)
        assert new_of(c, seq=1) == []  # never what came before joining
        # Sync and history agree: from joinedSeq on.
        assert [m["seq"] for m in history(carol, group["id"])] == [2, 3, 4]
        synced, done = await sync(c)
        assert [m["seq"] for m in synced] == [2, 3, 4]
        assert done["conversations"][0]["deliveredSeq"] == 1 and done["conversations"][0]["lastSeq"] == 4
        assert carol.api("GET", f"/api/conversations/{group['id']}/").json()["unreadCount"] == 2
        # Carol can send, and everyone gets it.
        await c.send_message(group["id"], "thanks")
        await wait_new(a, seq=5)
        await wait_new(b, seq=5)
    finally:
        for s in (a, b, c):
            await s.close()


async def test_a_removed_member_gets_the_removal_then_nothing_and_cannot_send(make_user):
    alice, bob, carol = make_user("alice"), make_user("bob"), make_user("carol")
    group = conversation(alice, bob, carol)
    a, b, c = await alice.ws(), await bob.ws(), await carol.ws()
    try:
        await b.send_message(group["id"], "bob was here")
        response = alice.api("DELETE", f"/api/conversations/{group['id']}/participants/{bob.id}/")
        assert response.status_code == 204, response.text
        removed = await wait_new(b, kind="member_removed")
        assert removed["seq"] == 2 and removed["meta"] == {"userIds": [bob.id]}
        await a.send_message(group["id"], "after bob")
        await wait_new(c, seq=3)  # the path works: carol gets it
        refused = await b.request(
            {"type": "message.send", "conversationId": group["id"], "content": "still here?", "clientMessageId": "x"}
        )
        assert refused["type"] == "error" and refused["code"] == "not_found"
        typing = await b.request({"type": "typing", "conversationId": group["id"], "isTyping": True})
        assert typing["code"] == "not_found"
        await asyncio.sleep(1.0)
        assert new_of(b, seq=3) == [] and [m["seq"] for m in history(bob, group["id"])] == [1, 2]
        listing = bob.api("GET", "/api/conversations/").json()
        assert group["id"] not in [conv["id"] for conv in listing]
        assert bob.api("GET", f"/api/conversations/{group['id']}/").status_code == 404
        assert bob.api("DELETE", f"/api/conversations/{group['id']}/participants/{carol.id}/").status_code == 404
        # A member without the right: forbidden.
        response = carol.api("DELETE", f"/api/conversations/{group['id']}/participants/{alice.id}/")
        assert response.status_code == 403 and response.json()["code"] == "forbidden"
        assert len(history(alice, group["id"])) == 3  # nothing stored for the refusals
    finally:
        for s in (a, b, c):
            await s.close()


async def test_leaving_hands_over_admin_and_renaming_reaches_everyone(make_user):
    alice, bob, carol = make_user("alice"), make_user("bob"), make_user("carol")
    group = conversation(alice, bob, carol, title="trio")
    a, b, c = await alice.ws(), await bob.ws(), await carol.ws()
    try:
        assert bob.api("PATCH", f"/api/conversations/{group['id']}/", {"title": "mine"}).status_code == 403
        response = alice.api("DELETE", f"/api/conversations/{group['id']}/participants/{alice.id}/")
        assert response.status_code == 204
        left = await wait_new(b, kind="member_left")
        assert left["senderId"] == alice.id and left["seq"] == 1
        await wait_new(a, kind="member_left")  # the leaver's own sockets learn it
        handover = await wait_new(c, kind="role_changed")
        # The longest-standing member (the lowest user id of those there from the start) becomes admin.
        assert handover["meta"] == {"userIds": [bob.id], "role": "admin"} and handover["seq"] == 2
        response = bob.api("PATCH", f"/api/conversations/{group['id']}/", {"title": "duo"})
        assert response.status_code == 200 and response.json()["title"] == "duo"
        assert {p["id"]: p["role"] for p in response.json()["participants"]} == {bob.id: "admin", carol.id: "member"}
        renamed = await wait_new(c, kind="renamed")
        assert renamed["meta"] == {"title": "duo"}
        await asyncio.sleep(1.0)
        assert new_of(a, kind="role_changed") == [] and new_of(a, kind="renamed") == []
        assert [m["kind"] for m in history(alice, group["id"])] == ["member_left"]
        assert carol.api("GET", f"/api/conversations/{group['id']}/").json()["title"] == "duo"
        # Roles by REST: bob makes carol admin, then may step down.
        path = f"/api/conversations/{group['id']}/participants/"
        assert bob.api("POST", f"{path}{bob.id}/role/", {"role": "member"}).status_code == 400  # the last admin
        assert bob.api("POST", f"{path}{carol.id}/role/", {"role": "admin"}).status_code == 200
        assert bob.api("POST", f"{path}{bob.id}/role/", {"role": "member"}).status_code == 200
        await wait_new(c, kind="role_changed", seq=5)
    finally:
        for s in (a, b, c):
            await s.close()


async def test_edit_and_delete_are_seen_live_after_a_reconnect_and_in_history(make_user):
    alice, bob = make_user("alice"), make_user("bob")
    direct = conversation(alice, bob)
    a, b = await alice.ws(), await bob.ws()
    try:
        sent = (await a.send_message(direct["id"], "helo"))["message"]
        ack = await a.request(
            {"type": "message.edit", "messageId": sent["id"], "content": "hello", "clientMessageId": "e1"}
        )
        assert ack["type"] == "message.ack" and ack["message"]["kind"] == "edit"
        assert ack["message"]["refersTo"] == sent["id"] and ack["message"]["meta"] == {"content": "hello"}
        assert (await wait_new(b, kind="edit"))["meta"] == {"content": "hello"}
        refused = await b.request(
            {"type": "message.edit", "messageId": sent["id"], "content": "x", "clientMessageId": "b"}
        )
        assert refused["type"] == "error" and refused["code"] == "forbidden"
        ack = await a.request({"type": "message.delete", "messageId": sent["id"], "clientMessageId": "d1"})
        assert ack["type"] == "message.ack" and ack["message"]["kind"] == "delete" and ack["message"]["seq"] == 3
        await wait_new(b, kind="delete")
        again = await a.request({"type": "message.delete", "messageId": sent["id"], "clientMessageId": "d2"})
        assert again["code"] == "validation_error"
        # Over REST: edit 201, delete 200.
        other = (await a.send_message(direct["id"], "second"))["message"]
        path = f"/api/conversations/{direct['id']}/messages/{other['id']}/"
        response = alice.api("POST", f"{path}edit/", {"content": "second!", "clientMessageId": "e2"})
        assert response.status_code == 201 and response.json()["kind"] == "edit"
        assert alice.api("POST", f"{path}edit/", {"content": "second!", "clientMessageId": "e2"}).status_code == 200
        assert bob.api("DELETE", path).status_code == 403
        response = alice.api("DELETE", path)
        assert response.status_code == 200 and response.json()["kind"] == "delete"
        # History shows the latest state, events included.
        shown = {m["seq"]: m for m in history(bob, direct["id"])}
        assert shown[1]["content"] == "" and shown[1]["deletedAt"] and shown[1]["editedAt"]
        assert shown[2]["meta"] == {"content": ""}  # the edit of a deleted message holds no text
        assert [m["kind"] for m in shown.values()] == ["text", "edit", "delete", "text", "edit", "delete"]
        # After a reconnect, sync brings the events (bob confirmed nothing).
        await b.close()
        b = await bob.ws()
        synced, _ = await sync(b)
        assert [m["kind"] for m in synced] == ["text", "edit", "delete", "text", "edit", "delete"]
    finally:
        await a.close()
        await b.close()


async def test_watermarks_and_unread_counts_with_events_in_between(make_user):
    alice, bob, carol, dan = make_user("alice"), make_user("bob"), make_user("carol"), make_user("dan")
    group = conversation(alice, bob, dan)
    a = await alice.ws()

    def read(user, up_to_seq):
        assert user.api("POST", f"/api/conversations/{group['id']}/read/", {"upToSeq": up_to_seq}).status_code == 204

    try:
        read(dan, 0)
        await a.send_message(group["id"], "one")
        assert alice.api("PATCH", f"/api/conversations/{group['id']}/", {"title": "renamed"}).status_code == 200
        await a.send_message(group["id"], "two")
        detail = bob.api("GET", f"/api/conversations/{group['id']}/").json()
        assert detail["lastSeq"] == 3 and detail["unreadCount"] == 2  # the rename does not count
        read(bob, 3)
        read(dan, 3)
        await a.wait_type("message.status", status="READ", aggregate=True, upToSeq=3)
        assert bob.api("GET", f"/api/conversations/{group['id']}/").json()["unreadCount"] == 0
        # Carol joins at 4: she never holds up what came before.
        alice.api("POST", f"/api/conversations/{group['id']}/participants/", {"userIds": [carol.id]})
        assert [m["status"] for m in history(alice, group["id"]) if m["kind"] == "text"] == ["READ", "READ"]
        await a.send_message(group["id"], "three")
        read(bob, 5)
        read(dan, 5)
        assert history(alice, group["id"])[-1]["status"] == "SENT"  # carol has not got it yet
        read(carol, 5)
        await a.wait_type("message.status", status="READ", aggregate=True, upToSeq=5)
        assert history(alice, group["id"])[-1]["status"] == "READ"
        # Once bob leaves he no longer counts: alice's next message waits for the others alone.
        assert bob.api("DELETE", f"/api/conversations/{group['id']}/participants/{bob.id}/").status_code == 204
        await a.send_message(group["id"], "four")
        read(carol, 7)
        assert history(alice, group["id"])[-1]["status"] == "SENT"  # dan has not read it
        read(dan, 7)
        assert history(alice, group["id"])[-1]["status"] == "READ"
    finally:
        await a.close()


async def test_the_member_cache_follows_changes_made_through_another_web_process(stack, make_user):
    _proc, other_base = stack.start_web()
    alice, bob, carol = make_user("alice"), make_user("bob"), make_user("carol")
    bob_there = register(other_base, "bob2")  # a user whose requests go to the second process
    group = conversation(alice, bob, bob_there)
    c = await carol.ws()
    b2 = await bob_there.ws()
    a = await alice.ws()
    try:
        # The second process sends to the group, so it keeps the members; the first then adds carol.
        path = f"/api/conversations/{group['id']}/messages/"
        assert bob_there.api("POST", path, {"content": "cached", "clientMessageId": uuid.uuid4().hex}).ok
        alice.api("POST", f"/api/conversations/{group['id']}/participants/", {"userIds": [carol.id]})
        await wait_new(c, kind="member_added")
        # A send through the second process reaches carol at once.
        assert bob_there.api("POST", path, {"content": "for carol too", "clientMessageId": uuid.uuid4().hex}).ok
        assert (await wait_new(c, seq=3))["content"] == "for carol too"
        # The first removes bob_there; the second process refuses his next send.
        alice.api("DELETE", f"/api/conversations/{group['id']}/participants/{bob_there.id}/")
        await wait_new(b2, kind="member_removed")
        response = bob_there.api("POST", path, {"content": "gone", "clientMessageId": uuid.uuid4().hex})
        assert response.status_code == 404
        refused = await b2.request(
            {"type": "message.send", "conversationId": group["id"], "content": "x", "clientMessageId": "y"}
        )
        assert refused["code"] == "not_found"
        await c.send_message(group["id"], "after")
        await wait_new(a, seq=5)  # a member gets it (the sender's own socket has it from the ack)
        await asyncio.sleep(1.0)
        assert new_of(b2, seq=5) == []
        assert [m["seq"] for m in history(alice, group["id"])] == [1, 2, 3, 4, 5]
    finally:
        await c.close()
        await b2.close()
        await a.close()
