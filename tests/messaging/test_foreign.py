"""Records of other services in the seed's shapes: resolved from the database, or refused with the reason."""

import uuid

import pytest
from django.contrib.auth import get_user_model

from kafka_bridge.payloads import Unprocessable
from messaging import services
from messaging.events import ChatMessage, MessageStatusEvent, TypingEvent
from messaging.foreign import foreign_chat_message, foreign_status_event, foreign_typing_event

User = get_user_model()


@pytest.fixture
def world(db):
    """Ann, Ben and Cy in a group, Dee outside it, and one message of Ann's."""
    ann, ben, cy, dee = (User.objects.create_user(username=n, password="x") for n in ("ann", "ben", "cy", "dee"))
    group, _ = services.conversation_create(creator=ann, participant_ids=[ben.pk, cy.pk])
    message, _ = services.message_send(sender=ann, conversation_id=group.pk, content="hi", client_message_id="1")
    return ann, ben, cy, dee, group, message


def seed_status(message, user, **changes) -> MessageStatusEvent:
    """The seed's example status event, with real ids in place of its placeholders."""
    fields = {
        "messageId": str(message.pk),
        "conversationId": str(message.conversation_id),
        "status": "READ",
        "userId": str(user.pk),
        "timestamp": "2025-11-11T22:30:00",
    }
    return MessageStatusEvent.from_dict({**fields, **changes})


def test_a_status_event_without_sender_is_resolved_from_the_message(world):
    ann, ben, _cy, _dee, _group, message = world
    event = foreign_status_event(seed_status(message, ben))
    assert event.sender_id == str(ann.pk) and event.user_id == str(ben.pk)
    assert event.timestamp == "2025-11-11T22:30:00.000Z"  # no zone: UTC


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"messageId": "msg-789"}, "unknown message 'msg-789'"),
        ({"messageId": "00000000-0000-0000-0000-000000000000"}, "unknown message"),
        ({"conversationId": "conv-456"}, "is not in conversation 'conv-456'"),
        ({"userId": "user-123"}, "unknown user 'user-123'"),
        ({"userId": "999999999"}, "unknown user '999999999'"),
        ({"senderId": "999999999"}, "was not sent by user '999999999'"),
        ({"status": "LIKED"}, "unknown status 'LIKED'"),
        ({"userId": None}, "names the recipient whose status it is"),
        ({"timestamp": "yesterday"}, "timestamp 'yesterday' is not an ISO 8601 time"),
    ],
)
def test_a_status_event_naming_the_unknown_is_refused_with_the_reason(world, changes, reason):
    _ann, ben, *_rest, message = world
    with pytest.raises(Unprocessable, match=reason):
        foreign_status_event(seed_status(message, ben, **changes))


def test_a_status_event_of_someone_outside_the_conversation_is_refused(world):
    ann, _ben, _cy, dee, group, message = world
    with pytest.raises(Unprocessable, match=f"user '{dee.pk}' is not a participant of conversation '{group.pk}'"):
        foreign_status_event(seed_status(message, dee))
    with pytest.raises(Unprocessable, match="a status is a recipient's"):
        foreign_status_event(seed_status(message, ann))


def seed_typing(conversation_id, user, **changes) -> TypingEvent:
    fields = {"conversationId": str(conversation_id), "userId": str(user.pk), "isTyping": True, "timestamp": 1}
    return TypingEvent.from_dict({**fields, **changes})


def test_a_typing_event_without_recipients_is_resolved_from_the_conversation(world):
    ann, ben, cy, _dee, group, _message = world
    event = foreign_typing_event(seed_typing(group.pk, ben))
    assert event.recipient_ids == sorted([str(ann.pk), str(cy.pk)], key=int)
    # Recipients it names must be participants; the typist is never one.
    named = foreign_typing_event(seed_typing(group.pk, ben, recipientIds=[str(cy.pk), str(ben.pk)]))
    assert named.recipient_ids == [str(cy.pk)]


def test_a_typing_event_naming_the_unknown_is_refused_with_the_reason(world):
    _ann, ben, _cy, dee, group, _message = world
    with pytest.raises(Unprocessable, match="unknown conversation 'conv-456'"):
        foreign_typing_event(seed_typing("conv-456", ben))
    with pytest.raises(Unprocessable, match="unknown conversation"):
        foreign_typing_event(seed_typing(uuid.uuid4(), ben))
    with pytest.raises(Unprocessable, match="unknown user 'user-123'"):
        foreign_typing_event(seed_typing(group.pk, ben, userId="user-123"))
    with pytest.raises(Unprocessable, match="is not a participant"):
        foreign_typing_event(seed_typing(group.pk, dee))
    with pytest.raises(Unprocessable, match="is not a participant"):
        foreign_typing_event(seed_typing(group.pk, ben, recipientIds=[str(dee.pk)]))


def test_a_chat_message_naming_a_stored_message_delivers_what_is_stored(world):
    ann, ben, cy, _dee, group, message = world
    record = ChatMessage.from_dict(
        {
            "messageId": str(message.pk),
            "conversationId": str(group.pk),
            "senderId": str(ann.pk),
            "recipientId": str(ben.pk),
            "recipientIds": [str(ben.pk)],
            "content": "not what was stored",
            "seq": 99,
            "clientMessageId": "x",
            "createdAt": "2025-11-11T22:30:00",
        }
    )
    event = foreign_chat_message(record)
    assert (event.content, event.seq, event.client_message_id) == ("hi", 1, "1")
    assert event.recipient_ids == sorted([str(ben.pk), str(cy.pk)], key=int)
    with pytest.raises(Unprocessable, match="unknown message"):
        foreign_chat_message(ChatMessage.from_dict({**record.to_dict(), "messageId": str(uuid.uuid4())}))
    with pytest.raises(Unprocessable, match="unknown user 'user-123'"):
        foreign_chat_message(ChatMessage.from_dict({**record.to_dict(), "recipientId": "user-123"}))
