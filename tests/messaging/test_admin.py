"""A group's members in the admin: shown with their roles, changed through the services, so as events."""

import json

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.urls import reverse

from kafka_bridge.models import OutboxRecord
from messaging import services
from messaging.models import Message, Participant

User = get_user_model()


def staff(username, *codenames):
    user = User.objects.create_user(username=username, password="x", is_staff=True)
    user.user_permissions.add(*Permission.objects.filter(codename__in=codenames))
    return user


@pytest.fixture
def group(db):
    ann, ben, cat, dan = (User.objects.create_user(username=n, password="x") for n in ("ann", "ben", "cat", "dan"))
    conversation, _ = services.conversation_create(creator=ann, participant_ids=[ben.pk, dan.pk], title="team")
    return conversation, ann, ben, cat


def test_staff_see_members_with_roles_and_change_them_as_events(client, group):
    conversation, ann, _ben, cat = group
    client.force_login(staff("op", "view_conversation", "change_participant"))
    url = reverse("admin:messaging_conversation_members", args=[conversation.pk])
    page = client.get(url)
    assert page.status_code == 200
    assert b"ann" in page.content and b"admin" in page.content
    change_page = client.get(reverse("admin:messaging_conversation_change", args=[conversation.pk]))
    assert url.encode() in change_page.content

    assert client.post(url, {"action": "add", "usernames": "cat, ben"}).status_code == 302
    assert client.post(url, {"action": "admin", "usernames": "ben"}).status_code == 302
    assert client.post(url, {"action": "remove", "usernames": "ann"}).status_code == 302
    assert client.post(url, {"action": "rename", "title": "renamed"}).status_code == 302
    kinds = list(Message.objects.filter(conversation=conversation).order_by("seq").values_list("kind", flat=True))
    assert kinds == ["member_added", "role_changed", "member_removed", "renamed"]
    records = [json.loads(bytes(r.value)) for r in OutboxRecord.objects.filter(topic="chat-messages").order_by("id")]
    assert str(cat.pk) in records[0]["recipientIds"] and str(ann.pk) in records[0]["recipientIds"]
    roles = dict(
        Participant.objects.filter(conversation=conversation, left_seq__isnull=True).values_list(
            "user__username", "role"
        )
    )
    assert roles == {"ben": "admin", "cat": "member", "dan": "member"}
    # The rules still hold: the last admin cannot be made a member; nothing is stored.
    refused = client.post(url, {"action": "member", "usernames": "ben"})
    assert refused.status_code == 200 and b"at least one admin" in refused.content
    assert client.post(url, {"action": "add", "usernames": "nobody"}).status_code == 200
    assert Message.objects.filter(conversation=conversation).count() == 4


def test_the_members_page_needs_the_permission(client, group):
    conversation, *_ = group
    client.force_login(staff("viewer", "view_conversation"))
    url = reverse("admin:messaging_conversation_members", args=[conversation.pk])
    assert client.get(url).status_code == 403
    assert client.post(url, {"action": "rename", "title": "x"}).status_code == 403
    assert not Message.objects.exists()
