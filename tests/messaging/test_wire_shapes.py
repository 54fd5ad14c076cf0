"""The OpenAPI serializers describe exactly what the wire functions send."""

from django.contrib.auth import get_user_model

from messaging import selectors, services
from messaging.api import ConversationOut, MessageOut, ParticipantOut
from messaging.wire import message_wire
from notifications.api import NotificationOut
from notifications.events import Notification
from users.api import PublicUserOut
from users.selectors import user_get_active


def test_schema_serializers_match_the_wire(db):
    users = get_user_model().objects
    a, b = users.create_user(username="a", password="x"), users.create_user(username="b", password="x")
    direct, _ = services.conversation_create(creator=a, participant_ids=[b.pk])
    message, _ = services.message_send(sender=a, conversation_id=direct.pk, content="hi", client_message_id="1")
    (summary,) = selectors.conversation_summaries(list(selectors.conversations_for_user(a)))
    notification = Notification(
        id="n", user_id="1", title="t", content="c", type="SYSTEM", related_entity_id=None, read=False, created_at="t"
    )

    assert set(MessageOut().fields) == set(message_wire(message))
    assert set(ConversationOut().fields) == set(summary)
    assert set(ParticipantOut().fields) == set(summary["participants"][0])
    assert set(PublicUserOut().fields) == set(user_get_active(user_id=a.pk))
    assert set(NotificationOut().fields) == set(notification.to_dict())
