"""The admin: notification history, the send page, and read-only conversations and messages."""

from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from core.errors import ValidationFailed
from kafka_bridge.models import OutboxRecord
from messaging import services as messaging
from messaging.events import ChatMessage
from messaging.models import Conversation, Message
from notifications.events import Notification as NotificationEvent
from notifications.models import Notification
from notifications.services import notification_for_new_message

User = get_user_model()

CHANGELIST = reverse("admin:notifications_notification_changelist")
SEND = reverse("admin:notifications_notification_send")


def staff(username, *codenames):
    user = User.objects.create_user(username=username, password="x", is_staff=True)
    user.user_permissions.add(*Permission.objects.filter(codename__in=codenames))
    return user


@pytest.fixture
def viewer(db, client):
    """A staff client allowed to view notifications, and nothing else."""
    client.force_login(staff("viewer", "view_notification"))
    return client


def notify(user, title, *, type=Notification.Type.SYSTEM, read=False, age=timedelta(0), **fields):
    when = timezone.now() - age
    return Notification.objects.create(
        user=user, type=type, title=title, read=read, created_at=when, updated_at=when, **fields
    )


def notification_rows(count):
    for i in range(count):
        user = User.objects.create_user(username=f"n{Notification.objects.count()}-{i}", password="x")
        notify(user, f"system {i}")
        notify(user, f"message {i}", type=Notification.Type.NEW_MESSAGE, related_entity_id=str(Message().id))


def queries(client, url):
    """Return how many queries a successful GET of `url` runs."""
    client.get(url)  # warm up per-process caches (content types, sessions)
    with CaptureQueriesContext(connection) as captured:
        response = client.get(url)
    assert response.status_code == 200, response.status_code
    return len(captured.captured_queries)


def outbox_notifications():
    return [
        NotificationEvent.decode(bytes(r.value))
        for r in OutboxRecord.objects.filter(topic="notifications").order_by("id")
    ]


### Notification history ###


def test_changelist_renders_for_staff_with_view_permission(viewer):
    alice = User.objects.create_user(username="alice", password="x")
    notify(alice, "Maintenance tonight")
    response = viewer.get(CHANGELIST)
    assert response.status_code == 200
    assert b"Maintenance tonight" in response.content and b"alice" in response.content
    # Viewing only: no add button, no send button, no bulk delete action.
    assert b"Send system notification" not in response.content
    assert reverse("admin:notifications_notification_add").encode() not in response.content
    assert b'name="action"' not in response.content


def test_changelist_renders_for_superuser_with_send_button(admin_client):
    notify(User.objects.create_user(username="alice", password="x"), "hello")
    response = admin_client.get(CHANGELIST)
    assert response.status_code == 200 and b"hello" in response.content
    assert f'href="{SEND}"'.encode() in response.content


def test_changelist_filters_and_search(viewer):
    alice = User.objects.create_user(username="alice", password="x")
    bob = User.objects.create_user(username="bob", password="x")
    wanted = notify(alice, "Welcome alice")
    notify(alice, "Welcome again", read=True)
    notify(alice, "New message", type=Notification.Type.NEW_MESSAGE)
    notify(alice, "Old news", age=timedelta(days=30))
    notify(bob, "Welcome bob")
    # As the date filter's own "Today" link spells it.
    today = timezone.localtime().replace(hour=0, minute=0, second=0, microsecond=0)
    response = viewer.get(
        CHANGELIST,
        {
            "type__exact": "SYSTEM",
            "read__exact": "0",
            "created_at__gte": str(today),
            "created_at__lt": str(today + timedelta(days=1)),
            "q": "alice",
        },
    )
    assert response.status_code == 200
    assert list(response.context["cl"].result_list) == [wanted]
    # Search matches titles too, and the date hierarchy narrows to a year.
    response = viewer.get(CHANGELIST, {"q": "welcome", "created_at__year": str(today.year)})
    titles = {n.title for n in response.context["cl"].result_list}
    assert {"Welcome alice", "Welcome again", "Welcome bob"} <= titles and "New message" not in titles


def test_changelist_lists_newest_first(viewer):
    alice = User.objects.create_user(username="alice", password="x")
    older = notify(alice, "older", age=timedelta(hours=2))
    newer = notify(alice, "newer")
    response = viewer.get(CHANGELIST)
    assert list(response.context["cl"].result_list) == [newer, older]


def test_admin_refuses_non_staff_with_login_redirect(client, db):
    client.force_login(User.objects.create_user(username="plain", password="x"))
    for url in (CHANGELIST, SEND, reverse("admin:messaging_message_changelist")):
        response = client.get(url)
        assert response.status_code == 302 and response["Location"].startswith(reverse("admin:login")), url


def test_changelist_forbidden_to_staff_without_permission(client, db):
    client.force_login(staff("nobody"))
    assert client.get(CHANGELIST).status_code == 403


def test_notifications_cannot_be_added_or_deleted(admin_client):
    notification = notify(User.objects.create_user(username="alice", password="x"), "keep me")
    assert admin_client.get(reverse("admin:notifications_notification_add")).status_code == 403
    delete = reverse("admin:notifications_notification_delete", args=[notification.pk])
    assert admin_client.post(delete, {"post": "yes"}).status_code == 403
    assert Notification.objects.filter(pk=notification.pk).exists()


def test_change_page_marks_read_through_the_service(admin_client):
    notification = notify(User.objects.create_user(username="alice", password="x"), "read me")
    url = reverse("admin:notifications_notification_change", args=[notification.pk])
    response = admin_client.get(url)
    assert response.status_code == 200
    assert response.context["adminform"].form.fields.keys() == {"read"}
    response = admin_client.post(url, {"read": "on", "title": "changed", "_save": "Save"})
    assert response.status_code == 302
    notification.refresh_from_db()
    assert notification.read and notification.title == "read me"
    # Published like any read: the user's other sockets hear of it.
    (event,) = outbox_notifications()
    assert event.id == str(notification.pk) and event.read is True
    # Once read, nothing is editable (there is no way back to unread).
    assert admin_client.get(url).context["adminform"].form.fields.keys() == set()


def test_change_page_is_read_only_for_viewers(viewer):
    notification = notify(User.objects.create_user(username="alice", password="x"), "look only")
    url = reverse("admin:notifications_notification_change", args=[notification.pk])
    assert viewer.get(url).status_code == 200
    assert viewer.post(url, {"read": "on"}).status_code == 403
    notification.refresh_from_db()
    assert not notification.read and not OutboxRecord.objects.exists()


def test_message_link_points_to_the_message_admin_page(admin_client):
    alice = User.objects.create_user(username="alice", password="x")
    bob = User.objects.create_user(username="bob", password="x")
    direct, _ = messaging.conversation_create(creator=alice, participant_ids=[bob.pk])
    message, _ = messaging.message_send(sender=alice, conversation_id=direct.pk, content="ping", client_message_id="c1")
    event = ChatMessage.decode(bytes(OutboxRecord.objects.get(topic="chat-messages").value))
    notification = notification_for_new_message(user_id=bob.pk, event=event)
    assert notification.related_entity_id == str(message.pk)

    response = admin_client.get(CHANGELIST)
    message_url = reverse("admin:messaging_message_change", args=[message.pk])
    assert f'href="{message_url}"'.encode() in response.content
    page = admin_client.get(message_url)
    assert page.status_code == 200 and b"ping" in page.content


def test_message_link_is_absent_for_system_and_foreign_ids(admin_client):
    alice = User.objects.create_user(username="alice", password="x")
    notify(alice, "system")
    notify(alice, "foreign", type=Notification.Type.NEW_MESSAGE, related_entity_id="msg-123")
    response = admin_client.get(CHANGELIST)
    assert b"View message" not in response.content
    assert b"msg-123" in response.content


### Queries do not grow with rows ###


def test_notification_changelist_queries_do_not_grow(admin_client):
    notification_rows(3)
    few = queries(admin_client, CHANGELIST)
    notification_rows(27)
    assert Notification.objects.count() == 60
    assert queries(admin_client, CHANGELIST) == few


def test_notification_changelist_queries_do_not_grow_for_viewers(viewer):
    notification_rows(3)
    few = queries(viewer, CHANGELIST)
    notification_rows(27)
    assert queries(viewer, CHANGELIST) == few


def conversations_with_messages(count):
    for i in range(count):
        a, b, c = (User.objects.create_user(username=f"c{Conversation.objects.count()}-{i}{x}") for x in "abc")
        group, _ = messaging.conversation_create(creator=a, participant_ids=[b.pk, c.pk], title=f"team-{i}")
        messaging.message_send(sender=b, conversation_id=group.pk, content=f"m{i}", client_message_id=f"c{i}")


def test_conversation_changelist_queries_do_not_grow(admin_client):
    url = reverse("admin:messaging_conversation_changelist")
    conversations_with_messages(3)
    few = queries(admin_client, url)
    conversations_with_messages(27)
    assert queries(admin_client, url) == few


def test_message_changelist_queries_do_not_grow(admin_client):
    url = reverse("admin:messaging_message_changelist")
    conversations_with_messages(3)
    few = queries(admin_client, url)
    conversations_with_messages(27)
    assert Message.objects.count() == 30
    assert queries(admin_client, url) == few


def test_conversation_change_page_queries_do_not_grow(admin_client):
    def group_of(size):
        users = [User.objects.create_user(username=f"g{size}-{i}", password="x") for i in range(size)]
        group, _ = messaging.conversation_create(creator=users[0], participant_ids=[u.pk for u in users[1:]])
        return reverse("admin:messaging_conversation_change", args=[group.pk])

    small, large = group_of(3), group_of(30)
    few = queries(admin_client, small)
    response = admin_client.get(large)
    assert response.context["original"].participant_count == 30
    assert b"g30-29" in response.content
    assert queries(admin_client, large) == few


### Conversations and messages: read-only ###


def test_conversations_and_messages_are_read_only(admin_client):
    conversations_with_messages(1)
    conversation, message = Conversation.objects.get(), Message.objects.get()
    for model, obj in (("conversation", conversation), ("message", message)):
        assert admin_client.get(reverse(f"admin:messaging_{model}_add")).status_code == 403
        change = reverse(f"admin:messaging_{model}_change", args=[obj.pk])
        assert admin_client.get(change).status_code == 200
        assert admin_client.post(change, {"title": "x", "content": "x"}).status_code == 403
        delete = reverse(f"admin:messaging_{model}_delete", args=[obj.pk])
        assert admin_client.post(delete, {"post": "yes"}).status_code == 403
    message.refresh_from_db()
    assert message.content == "m0" and Conversation.objects.get().title == "team-0"


def test_conversation_list_shows_participant_count_and_searches_by_id(admin_client):
    conversations_with_messages(2)
    target = Conversation.objects.get(title="team-1")
    url = reverse("admin:messaging_conversation_changelist")
    response = admin_client.get(url, {"q": str(target.pk)})
    (row,) = response.context["cl"].result_list
    assert row == target and row.participant_count == 3
    response = admin_client.get(url, {"q": "team-0"})
    assert [c.title for c in response.context["cl"].result_list] == ["team-0"]


def test_message_list_searches(admin_client):
    conversations_with_messages(3)
    url = reverse("admin:messaging_message_changelist")
    response = admin_client.get(url, {"q": "c1"})
    assert [m.content for m in response.context["cl"].result_list] == ["m1"]
    response = admin_client.get(url, {"q": "m2"})
    assert [m.content for m in response.context["cl"].result_list] == ["m2"]


### Sending system notifications ###


def test_send_page_sends_to_one_user(admin_client):
    alice = User.objects.create_user(username="alice", password="x")
    User.objects.create_user(username="bob", password="x")
    assert admin_client.get(SEND).status_code == 200
    response = admin_client.post(SEND, {"user": "alice", "title": " Hi alice ", "content": "Welcome"}, follow=True)
    assert response.redirect_chain == [(CHANGELIST, 302)]
    assert [str(m) for m in response.context["messages"]] == ["Sent 1 system notification."]
    (notification,) = Notification.objects.all()
    assert notification.user == alice and notification.type == "SYSTEM"
    assert (notification.title, notification.content, notification.read) == ("Hi alice", "Welcome", False)
    (event,) = outbox_notifications()
    assert (event.id, event.user_id, event.type, event.title) == (
        str(notification.pk),
        str(alice.pk),
        "SYSTEM",
        "Hi alice",
    )


def test_send_page_sends_to_every_active_user(admin_client, monkeypatch):
    monkeypatch.setattr("notifications.services.SYSTEM_BATCH_SIZE", 2)  # several batches
    users = [User.objects.create_user(username=f"u{i}", password="x") for i in range(4)]
    User.objects.create_user(username="gone", password="x", is_active=False)
    active = User.objects.filter(is_active=True)
    assert active.count() == 5  # the four, and the admin who sends
    response = admin_client.post(SEND, {"user": "", "title": "Maintenance", "content": "Tonight"}, follow=True)
    assert [str(m) for m in response.context["messages"]] == ["Sent 5 system notifications."]
    assert set(Notification.objects.values_list("user_id", flat=True)) == set(active.values_list("pk", flat=True))
    assert {users[0].pk} <= set(Notification.objects.values_list("user_id", flat=True))
    events = outbox_notifications()
    assert len(events) == Notification.objects.count() == 5
    assert {e.id for e in events} == {str(pk) for pk in Notification.objects.values_list("pk", flat=True)}


@pytest.mark.parametrize("title", ["", "   "])
def test_send_page_rejects_empty_title(admin_client, title):
    User.objects.create_user(username="alice", password="x")
    response = admin_client.post(SEND, {"user": "alice", "title": title, "content": "x"})
    assert response.status_code == 200
    assert "title" in response.context["form"].errors
    assert not Notification.objects.exists() and not OutboxRecord.objects.exists()


def test_send_page_rejects_unknown_user(admin_client):
    response = admin_client.post(SEND, {"user": "nobody", "title": "Hi", "content": ""})
    assert response.status_code == 200
    assert response.context["form"].errors["user"] == ["There is no user named 'nobody'."]
    assert not Notification.objects.exists() and not OutboxRecord.objects.exists()


def test_send_page_shows_service_validation_errors(admin_client, monkeypatch):
    # The form mirrors the service's limits; should they differ, the service's verdict shows on the form.
    def refuse(**kwargs):
        raise ValidationFailed({"content": "Must be at most 4000 characters."})

    monkeypatch.setattr("notifications.admin.notification_send_system", refuse)
    response = admin_client.post(SEND, {"user": "admin", "title": "Hi", "content": "x"})
    assert response.status_code == 200
    assert response.context["form"].errors["content"] == ["Must be at most 4000 characters."]
    assert not Notification.objects.exists()


def test_send_page_refused_to_non_superusers(client, db):
    client.force_login(staff("operator", "view_notification", "add_notification", "change_notification"))
    assert client.get(SEND).status_code == 403
    assert client.post(SEND, {"user": "", "title": "Hi", "content": ""}).status_code == 403
    assert not Notification.objects.exists() and not OutboxRecord.objects.exists()
