"""Records other services produce in the seed's own shapes (kafka-integration-guide.md), through the real broker.

Each test produces the seed's literal example payloads, with real ids in
place of its placeholders, to the real topics, the way another service of
the delivery system would (no header of this service), and checks what the
bridge made of them: frames on the right sockets, notifications stored once,
and records naming what this service does not know parked in `<topic>.DLT`
at once, with the reason in their headers.
"""

import asyncio
import json
import time
import uuid
from unittest.mock import ANY

import pytest
from confluent_kafka import Producer

from kafka_bridge.consume.records import H_ERROR, H_ERROR_TYPE, H_OFFSET, H_PARTITION, H_TOPIC
from kafka_bridge.operate.dead_letters import DeadLetter, read_dead_letters
from kafka_bridge.produce.origin import PRODUCER_HEADER
from messaging.events import CHAT_MESSAGES, MESSAGE_STATUS_EVENTS, TYPING_EVENTS
from notifications.events import NOTIFICATIONS
from tests.support.client import conversation
from tests.support.stack import require_env

pytestmark = pytest.mark.integration


def produce(topic: str, key: str, *records: dict) -> None:
    """Produce records as another service would: JSON values, keyed as the seed says, no headers of ours."""
    producer = Producer({"bootstrap.servers": require_env("KAFKA_BOOTSTRAP_SERVERS")})
    for record in records:
        producer.produce(topic, key=key.encode(), value=json.dumps(record).encode())
    assert producer.flush(10) == 0


async def dead_letter(topic, marker: str, timeout: float = 30.0) -> DeadLetter:
    """Wait for the dead letter of `topic` whose value holds `marker`; return it."""
    deadline = time.monotonic() + timeout
    while True:
        letters = await asyncio.to_thread(lambda: list(read_dead_letters(topic, include_replayed=True)))
        found = [letter for letter in letters if marker.encode() in (letter.value or b"")]
        if found:
            return found[0]
        assert time.monotonic() < deadline, f"no dead letter of {topic.name} holds {marker!r}"
        await asyncio.sleep(0.3)


def assert_parked_at_once(stack, letter: DeadLetter, topic, reason: str, error_type: str = "Unprocessable") -> None:
    """The dead letter names its reason and origin, and the bridge never retried the record."""
    assert reason in letter.header(H_ERROR), letter.header(H_ERROR)
    assert letter.header(H_ERROR_TYPE) == error_type
    assert letter.header(H_TOPIC) == topic.name
    assert not letter.header(PRODUCER_HEADER)  # another service's record, as produced
    bridge_log = "\n".join(p.log_path.read_text(errors="replace") for p in stack.procs if p.name.startswith("bridge"))
    where = f"{topic.name}@{letter.header(H_PARTITION)}/{letter.header(H_OFFSET)}"
    assert f"Dead-lettering {where}" in bridge_log
    assert f"Handler for {where} failed" not in bridge_log  # no retries: retrying cannot help


async def test_a_status_event_without_sender_reaches_the_messages_sender(make_user, stack):
    ann, ben = make_user("ann"), make_user("ben")
    direct = conversation(ann, ben)
    a = await ann.ws()
    try:
        message_id = (await a.send_message(direct["id"], "hi"))["message"]["id"]
        unknown_message = str(uuid.uuid4())
        seed = {
            "messageId": "msg-789",
            "conversationId": direct["id"],
            "status": "READ",
            "userId": ben.id,
            "timestamp": "2025-11-11T22:30:00",
        }
        # Keyed by userId, as the seed's producer does: the unknown message first, then the real one.
        unknown, known = {**seed, "messageId": unknown_message}, {**seed, "messageId": message_id}
        produce(MESSAGE_STATUS_EVENTS.name, ben.id, unknown, known)

        status = await a.wait_type("message.status", messageId=message_id)
        assert status == {
            "type": "message.status",
            "messageId": message_id,
            "conversationId": direct["id"],
            "status": "READ",
            "userId": ben.id,
            "timestamp": "2025-11-11T22:30:00.000Z",  # no zone in the record: UTC
        }
        letter = await dead_letter(MESSAGE_STATUS_EVENTS, unknown_message)
        assert_parked_at_once(stack, letter, MESSAGE_STATUS_EVENTS, f"unknown message '{unknown_message}'")
        assert len(a.of_type("message.status")) == 1
    finally:
        await a.close()


async def test_a_typing_event_without_recipients_reaches_the_other_participants(make_user, stack):
    ann, ben, cy, dee = make_user("ann"), make_user("ben"), make_user("cy"), make_user("dee")
    group = conversation(ann, ben, cy)
    a, b, c, d = await ann.ws(), await ben.ws(), await cy.ws(), await dee.ws()
    try:
        seed = {"conversationId": group["id"], "userId": ann.id, "isTyping": True, "timestamp": 1699732200000}
        # Dee is not in the conversation: her "typing" is parked, and the real one still arrives behind it.
        produce(TYPING_EVENTS.name, group["id"], {**seed, "userId": dee.id}, seed)
        expected = {"type": "typing", "conversationId": group["id"], "userId": ann.id, "isTyping": True}
        for socket in (b, c):
            frame = await socket.wait_type("typing", userId=ann.id)
            assert frame == {**expected, "timestamp": 1699732200000}
        letter = await dead_letter(TYPING_EVENTS, f'"userId": "{dee.id}"')
        assert_parked_at_once(
            stack, letter, TYPING_EVENTS, f"user '{dee.id}' is not a participant of conversation '{group['id']}'"
        )

        # A conversation this service does not know: parked too.
        unknown = str(uuid.uuid4())
        produce(TYPING_EVENTS.name, unknown, {**seed, "conversationId": unknown})
        letter = await dead_letter(TYPING_EVENTS, unknown)
        assert_parked_at_once(stack, letter, TYPING_EVENTS, f"unknown conversation '{unknown}'")

        # Never to the typist, never to someone outside the conversation, and Dee's reached nobody.
        assert a.of_type("typing") == [] and d.of_type("typing") == []
        assert [f["userId"] for f in b.of_type("typing")] == [ann.id]
    finally:
        for socket in (a, b, c, d):
            await socket.close()


def seed_notification(user_id: str, related: str) -> dict:
    return {
        "id": "notif-111",
        "userId": user_id,
        "title": "New Message",
        "content": "You have a new message from John",
        "type": "NEW_MESSAGE",
        "relatedEntityId": related,
        "read": False,
        "createdAt": "2025-11-11T22:30:00",
    }


async def test_a_notification_with_any_string_id_is_stored_once_under_it(make_user, stack):
    ann, ben = make_user("ann"), make_user("ben")
    direct = conversation(ben, ann)
    socket = await ann.ws()
    try:
        sender = await ben.ws()
        message_id = (await sender.send_message(direct["id"], "hi"))["message"]["id"]
        await sender.close()
        seed = seed_notification(ann.id, message_id)
        produce(NOTIFICATIONS.name, ann.id, seed, seed)  # the same record twice, as a redelivery would

        frames = await socket.wait_for(lambda f: f.get("notification", {}).get("id") == "notif-111", count=2)
        pushed = frames[0]["notification"]
        assert pushed["createdAt"] == "2025-11-11T22:30:00.000Z" and pushed["userId"] == ann.id
        assert stack.query("SELECT count(*) FROM notifications_notification WHERE id = %s", "notif-111") == [(1,)]
        listed = ann.api("GET", "/api/notifications/").json()["results"]
        (item,) = [n for n in listed if n["id"] == "notif-111"]
        assert item["title"] == "New Message" and item["createdAt"] == "2025-11-11T22:30:00.000Z"

        # The string id works over REST too: marking it read tells the socket.
        assert ann.api("POST", "/api/notifications/notif-111/read/").status_code == 204
        await socket.wait_for(lambda f: f.get("notification", {}) == {**pushed, "read": True, "updatedAt": ANY})
    finally:
        await socket.close()


async def test_a_notification_without_id_gets_one_and_is_stored_once(make_user, stack):
    ann = make_user("ann")
    socket = await ann.ws()
    try:
        title = f"Order {uuid.uuid4().hex[:8]} is on its way"
        record = {k: v for k, v in seed_notification(ann.id, "order-1").items() if k != "id"}
        record["title"] = title
        produce(NOTIFICATIONS.name, ann.id, record, record)

        frames = await socket.wait_for(lambda f: f.get("notification", {}).get("title") == title, count=2)
        assigned = frames[0]["notification"]["id"]
        assert assigned and frames[1]["notification"]["id"] == assigned
        rows = stack.query("SELECT id FROM notifications_notification WHERE title = %s", title)
        assert rows == [(assigned,)]
        assert [n["id"] for n in ann.api("GET", "/api/notifications/").json()["results"]] == [assigned]
    finally:
        await socket.close()


async def test_a_notification_for_an_unknown_user_is_parked(make_user, stack):
    ann = make_user("ann")
    socket = await ann.ws()
    try:
        marker = f"notif-{uuid.uuid4().hex}"
        ghost = {**seed_notification("user-123", "msg-789"), "id": marker}
        control = {**seed_notification(ann.id, "msg-789"), "id": f"{marker}-control"}
        produce(NOTIFICATIONS.name, "user-123", ghost)
        produce(NOTIFICATIONS.name, ann.id, control)
        await socket.wait_for(lambda f: f.get("notification", {}).get("id") == control["id"])
        letter = await dead_letter(NOTIFICATIONS, f'"{marker}"')
        assert_parked_at_once(stack, letter, NOTIFICATIONS, "unknown user 'user-123'")
        assert stack.query("SELECT count(*) FROM notifications_notification WHERE id = %s", marker) == [(0,)]
    finally:
        await socket.close()


async def test_a_chat_message_without_message_id_is_parked(make_user, stack):
    ann, ben = make_user("ann"), make_user("ben")
    direct = conversation(ann, ben)
    a, b = await ann.ws(), await ben.ws()
    try:
        seed = {"content": "Hello!", "recipientId": ben.id, "conversationId": direct["id"]}
        produce(CHAT_MESSAGES.name, direct["id"], seed)  # keyed by conversationId, as the seed's producer does
        # Behind it in the same partition, a message sent through this service arrives.
        await a.send_message(direct["id"], "through the service")
        (frame,) = await b.wait_for(lambda f: f.get("type") == "message.new")
        assert frame["message"]["content"] == "through the service"
        letter = await dead_letter(CHAT_MESSAGES, direct["id"])
        assert_parked_at_once(
            stack, letter, CHAT_MESSAGES, "missing field 'messageId': not produced through this service", "PayloadError"
        )
        assert [f["message"]["content"] for f in b.of_type("message.new")] == ["through the service"]
    finally:
        await a.close()
        await b.close()
