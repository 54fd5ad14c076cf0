import json

import pytest

from kafka_bridge.consume.registry import topics
from kafka_bridge.payloads import PayloadError, Unprocessable, camel
from messaging.events import (
    CHAT_MESSAGES,
    MESSAGE_STATUS_EVENTS,
    TYPING_EVENTS,
    ChatMessage,
    MessageStatusEvent,
    TypingEvent,
)
from notifications.events import NOTIFICATIONS, Notification

CHAT = ChatMessage(
    message_id="m1",
    conversation_id="c1",
    sender_id="1",
    recipient_id="2",
    recipient_ids=["2"],
    content="Hello! ✓",
    seq=7,
    client_message_id="x",
    created_at="2026-01-01T00:00:00.000Z",
    sender_name="ann",
)


def test_camel_case_wire_names():
    assert camel("message_id") == "messageId"
    assert camel("up_to_seq") == "upToSeq"
    assert camel("read") == "read"


def test_round_trip_keeps_the_seeds_fields():
    wire = json.loads(CHAT.encode())
    # The seed's chat-messages fields keep their names.
    assert {"content", "recipientId", "conversationId"} <= wire.keys()
    assert wire["content"] == "Hello! ✓"
    assert ChatMessage.decode(CHAT.encode()) == CHAT


def test_optional_added_fields_may_be_absent():
    wire = json.loads(CHAT.encode())
    del wire["senderName"]
    assert ChatMessage.from_dict(wire).sender_name is None
    typing = TypingEvent.from_dict({"conversationId": "c", "userId": "1", "isTyping": True, "timestamp": 1})
    assert typing.recipient_ids is None  # the seed's shape: resolved from the conversation


@pytest.mark.parametrize(
    "raw",
    [
        b"{not json",
        b"\xff\xfe",
        b"[]",
        b'"text"',
        None,
        json.dumps({**json.loads(CHAT.encode()), "seq": "7"}).encode(),
        json.dumps({**json.loads(CHAT.encode()), "seq": True}).encode(),
        json.dumps({**json.loads(CHAT.encode()), "recipientIds": [2]}).encode(),
        json.dumps({k: v for k, v in json.loads(CHAT.encode()).items() if k != "messageId"}).encode(),
    ],
)
def test_bad_records_raise_payload_error(raw):
    with pytest.raises(PayloadError):
        ChatMessage.decode(raw)


def test_status_event_read_watermark():
    event = MessageStatusEvent.from_dict(
        {
            "messageId": "m",
            "conversationId": "c",
            "status": "READ",
            "userId": "2",
            "senderId": "1",
            "timestamp": "2026-01-01T00:00:00.000Z",
            "upToSeq": 9,
        }
    )
    assert event.up_to_seq == 9
    assert json.loads(event.encode())["upToSeq"] == 9


def test_topics_are_keyed_as_the_contract_says():
    status = MessageStatusEvent("m", "c", "DELIVERED", "2", "t", sender_id="1")
    notification = Notification("5", "t", "c", "SYSTEM", None, False, "t", id="n")
    typing = TypingEvent("c9", "1", True, 1)
    assert CHAT_MESSAGES.key(CHAT) == "c1"
    assert MESSAGE_STATUS_EVENTS.key(status) == "1"  # the sender, who must be told
    assert TYPING_EVENTS.key(typing) == "c9"
    assert NOTIFICATIONS.key(notification) == "5"
    assert [t.retention_ms for t in topics()] == [604800000, 86400000, 60000, 2592000000]
    assert CHAT_MESSAGES.dead_letter == "chat-messages.DLT"


### The seed's literal examples (kafka-integration-guide.md) ###

SEED_STATUS = {
    "messageId": "msg-789",
    "conversationId": "conv-456",
    "status": "READ",
    "userId": "user-123",
    "timestamp": "2025-11-11T22:30:00",
}
SEED_TYPING = {"conversationId": "conv-456", "userId": "user-123", "isTyping": True, "timestamp": 1699732200000}
SEED_NOTIFICATION = {
    "id": "notif-111",
    "userId": "user-123",
    "title": "New Message",
    "content": "You have a new message from John",
    "type": "NEW_MESSAGE",
    "relatedEntityId": "msg-789",
    "read": False,
    "createdAt": "2025-11-11T22:30:00",
}


def test_the_seeds_examples_decode():
    status = MessageStatusEvent.decode(json.dumps(SEED_STATUS).encode())
    assert status.sender_id is None and status.user_id == "user-123"
    assert MESSAGE_STATUS_EVENTS.key(status) == "user-123"  # the seed keys status events by userId
    assert TypingEvent.decode(json.dumps(SEED_TYPING).encode()).recipient_ids is None
    assert Notification.decode(json.dumps(SEED_NOTIFICATION).encode()).id == "notif-111"
    without_id = {k: v for k, v in SEED_NOTIFICATION.items() if k != "id"}
    assert Notification.decode(json.dumps(without_id).encode()).id is None


def test_a_chat_message_without_message_id_says_why():
    seed = {"content": "Hello!", "recipientId": "user-123", "conversationId": "conv-456"}
    with pytest.raises(PayloadError, match="missing field 'messageId': not produced through this service"):
        ChatMessage.decode(json.dumps(seed).encode())


def test_payload_errors_are_unprocessable():
    # The loop dead-letters both at once, without retries.
    assert issubclass(PayloadError, Unprocessable)
