"""A NEW_MESSAGE notification is read once its conversation is read past it, and every tab learns it (contract 1.3)."""

import asyncio

import pytest

from tests.support.client import conversation

pytestmark = pytest.mark.integration


async def test_reading_the_conversation_marks_its_notification_read_on_every_socket(make_user):
    alice, bob = make_user("alice"), make_user("bob")
    assert alice.api("PATCH", "/api/users/me/", {"displayName": "Ann Archer"}).status_code == 200
    direct = conversation(alice, bob)
    a = await alice.ws()  # bob is away: the offline-notifications loop tells him
    try:
        for text in ("are you there?", "call me"):
            await a.send_message(direct["id"], text)
    finally:
        await a.close()

    def unread() -> list[dict]:
        return bob.api("GET", "/api/notifications/", unread="true").json()["results"]

    for _ in range(200):
        items = unread()
        if items and items[0]["title"].startswith("2 new"):
            break
        await asyncio.sleep(0.1)
    (notification,) = items
    # Named as the page names her, and pointing at the conversation it announces.
    assert notification["title"] == "2 new messages from Ann Archer"
    assert notification["conversationId"] == direct["id"]

    b1, b2 = await bob.ws(), await bob.ws()  # two tabs
    try:
        # Read up to the first message only: the notification announces the second, so it stays unread.
        response = bob.api("POST", f"/api/conversations/{direct['id']}/read/", {"upToSeq": 1})
        assert response.status_code == 204
        assert [n["id"] for n in unread()] == [notification["id"]]
        # One tab reads to the end: both learn the notification was read, by its `notification` frame.
        await b1.send({"type": "message.read", "conversationId": direct["id"], "upToSeq": 2})
        for socket in (b1, b2):
            (frame,) = await socket.wait_for(
                lambda f: f.get("type") == "notification" and f["notification"]["id"] == notification["id"]
            )
            assert frame["notification"]["read"] is True
            assert frame["notification"]["conversationId"] == direct["id"]
            assert frame["notification"]["updatedAt"] > notification["updatedAt"]
        assert unread() == []
    finally:
        await b1.close()
        await b2.close()
