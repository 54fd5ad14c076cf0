"""An operator's SYSTEM notification, end to end: send_notification -> PostgreSQL ->
outbox -> Kafka -> run_kafka_bridge -> the user's sockets, and the REST side of it."""

import asyncio
import uuid

import pytest

pytestmark = pytest.mark.integration


async def operator_sends(stack, user, title, content="From the operator"):
    """Run send_notification in a process of its own, as an operator would, off the event loop."""
    out = await asyncio.to_thread(
        stack.manage, "send_notification", "--user", user.username, "--title", title, "--content", content
    )
    assert f"to {user.username}." in out, out


def listed(user, **params):
    response = user.api("GET", "/api/notifications/", **params)
    assert response.status_code == 200, response.text
    return response.json()["results"]


def notification_frame(title, **fields):
    """Match a `notification` frame with this title and these fields."""

    def match(frame):
        if frame.get("type") != "notification":
            return False
        notification = frame["notification"]
        return notification["title"] == title and all(notification.get(k) == v for k, v in fields.items())

    return match


async def test_operator_notification_reaches_open_socket_and_rest(make_user, stack):
    alice = make_user("alice")
    socket = await alice.ws()
    title = f"Maintenance {uuid.uuid4().hex[:8]}"
    try:
        await operator_sends(stack, alice, title, "Tonight at 22:00 UTC")
        (frame,) = await socket.wait_for(notification_frame(title))
        pushed = frame["notification"]
        assert pushed["type"] == "SYSTEM" and pushed["read"] is False
        assert pushed["userId"] == alice.id and pushed["content"] == "Tonight at 22:00 UTC"
        assert pushed["relatedEntityId"] is None
        (item,) = listed(alice)
        assert item["id"] == pushed["id"] and item["title"] == title and item["type"] == "SYSTEM"
        # Once, though the command's process and the servers' all relay the outbox.
        await asyncio.sleep(1.0)
        assert len([f for f in socket.frames if notification_frame(title)(f)]) == 1
    finally:
        await socket.close()


async def test_operator_notification_reaches_only_its_user(make_user, stack):
    alice, eve = make_user("alice"), make_user("eve")
    alice_socket, eve_socket = await alice.ws(), await eve.ws()
    title = f"For alice {uuid.uuid4().hex[:8]}"
    eves = f"For eve {uuid.uuid4().hex[:8]}"
    try:
        await operator_sends(stack, alice, title)
        assert [n["title"] for n in listed(alice)] == [title]
        # The control: alice's socket gets it, so the bridge has handled its record.
        await alice_socket.wait_for(notification_frame(title))
        # And eve's socket does get what is hers, sent after alice's.
        await operator_sends(stack, eve, eves)
        await eve_socket.wait_for(notification_frame(eves))
        await asyncio.sleep(0.5)
        assert [f["notification"]["title"] for f in eve_socket.of_type("notification")] == [eves]
        assert [n["title"] for n in listed(eve)] == [eves]
        assert [f["notification"]["title"] for f in alice_socket.of_type("notification")] == [title]
    finally:
        await alice_socket.close()
        await eve_socket.close()


async def test_someone_elses_notification_is_not_found(make_user, stack):
    alice, eve = make_user("alice"), make_user("eve")
    title = f"Private {uuid.uuid4().hex[:8]}"
    await operator_sends(stack, alice, title)
    (item,) = listed(alice)
    response = eve.api("POST", f"/api/notifications/{item['id']}/read/")
    assert response.status_code == 404, response.text
    body = response.json()
    assert body["code"] == "not_found" and body["detail"]
    # Indistinguishable from an id that does not exist at all.
    unknown = eve.api("POST", f"/api/notifications/{uuid.uuid4()}/read/")
    assert (unknown.status_code, unknown.json()) == (404, body)
    assert listed(alice)[0]["read"] is False


async def test_marking_read_over_rest_tells_the_users_other_socket(make_user, stack):
    alice = make_user("alice")
    phone, laptop = await alice.ws(), await alice.ws()
    first, second = f"First {uuid.uuid4().hex[:8]}", f"Second {uuid.uuid4().hex[:8]}"
    try:
        await operator_sends(stack, alice, first)
        await operator_sends(stack, alice, second)
        for socket in (phone, laptop):
            await socket.wait_for(notification_frame(first, read=False))
            await socket.wait_for(notification_frame(second, read=False))
        assert {n["title"] for n in listed(alice, unread="true")} == {first, second}

        (item,) = [n for n in listed(alice) if n["title"] == first]
        response = alice.api("POST", f"/api/notifications/{item['id']}/read/")
        assert response.status_code == 204, response.text
        (frame,) = await laptop.wait_for(notification_frame(first, read=True))
        assert frame["notification"]["id"] == item["id"] and frame["notification"]["type"] == "SYSTEM"
        await phone.wait_for(notification_frame(first, read=True))

        assert [n["title"] for n in listed(alice, unread="true")] == [second]
        assert {n["title"]: n["read"] for n in listed(alice)} == {first: True, second: False}
        # Reading it again changes nothing and tells nobody.
        assert alice.api("POST", f"/api/notifications/{item['id']}/read/").status_code == 204
        await asyncio.sleep(1.0)
        assert len([f for f in laptop.frames if notification_frame(first, read=True)(f)]) == 1
    finally:
        await phone.close()
        await laptop.close()
