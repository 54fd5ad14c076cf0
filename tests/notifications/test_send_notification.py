"""The send_notification command: one user by name or id, everyone, and clear errors."""

from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command

from kafka_bridge.models import OutboxRecord
from notifications.events import Notification as NotificationEvent
from notifications.models import Notification

User = get_user_model()


def send(*args):
    """Run the command; return (stdout, stderr)."""
    out, err = StringIO(), StringIO()
    call_command("send_notification", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


@pytest.fixture
def alice(db):
    return User.objects.create_user(username="alice", password="x")


def published():
    return [NotificationEvent.decode(bytes(r.value)) for r in OutboxRecord.objects.filter(topic="notifications")]


def test_sends_to_a_user_by_username(alice):
    User.objects.create_user(username="bob", password="x")
    out, _ = send("--user", "alice", "--title", "Maintenance", "--content", "Tonight at 22:00")
    (notification,) = Notification.objects.all()
    assert notification.user == alice and notification.type == Notification.Type.SYSTEM
    assert (notification.title, notification.content) == ("Maintenance", "Tonight at 22:00")
    assert f"Sent notification {notification.pk} to alice." in out
    (event,) = published()
    assert (event.id, event.user_id, event.type) == (str(notification.pk), str(alice.pk), "SYSTEM")


def test_sends_to_a_user_by_id(alice):
    send("--user", str(alice.pk), "--title", "Hi")
    (notification,) = Notification.objects.all()
    assert notification.user == alice and notification.content == ""


def test_a_username_wins_over_an_id(alice):
    numeric = User.objects.create_user(username=str(alice.pk), password="x")
    send("--user", str(alice.pk), "--title", "Hi")
    assert Notification.objects.get().user == numeric


def test_all_sends_to_every_active_user_in_batches(db, monkeypatch):
    monkeypatch.setattr("notifications.services.SYSTEM_BATCH_SIZE", 2)
    active = [User.objects.create_user(username=f"u{i}", password="x") for i in range(5)]
    User.objects.create_user(username="gone", password="x", is_active=False)
    out, err = send("--all", "--title", "Release", "--content", "v2 is out")
    assert "Sent 5 notifications." in out
    assert "5/5" in err  # the progress bar reached its total
    assert sorted(Notification.objects.values_list("user_id", flat=True)) == sorted(u.pk for u in active)
    assert len(published()) == 5


def test_all_with_no_users_sends_nothing(db):
    out, _ = send("--all", "--title", "Release")
    assert "Sent 0 notifications." in out and not Notification.objects.exists()


@pytest.mark.parametrize("user", ["nobody", "999999", "99999999999999999999999", "٣"])
def test_unknown_user_is_a_command_error(alice, user):
    with pytest.raises(CommandError, match="No user with username or id"):
        send("--user", user, "--title", "Hi")
    assert not Notification.objects.exists() and not OutboxRecord.objects.exists()


def test_missing_title_is_a_command_error(alice):
    with pytest.raises(CommandError, match="--title"):
        send("--user", "alice", "--content", "no title")
    assert not Notification.objects.exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--title", ""], "title: Must be 1 to 200 characters."),
        (["--title", "   "], "title: Must be 1 to 200 characters."),
        (["--title", "x" * 201], "title: Must be 1 to 200 characters."),
        (["--title", "ok", "--content", "x" * 4001], "content: Must be at most 4000 characters."),
    ],
)
@pytest.mark.parametrize("target", [["--user", "alice"], ["--all"]])
def test_bad_input_is_a_command_error(alice, target, args, message):
    with pytest.raises(CommandError, match=f"^Invalid notification: {message}$"):
        send(*target, *args)
    assert not Notification.objects.exists() and not OutboxRecord.objects.exists()


@pytest.mark.parametrize("target", [[], ["--user", "alice", "--all"]])
def test_exactly_one_target_is_required(alice, target):
    with pytest.raises(CommandError, match="--user"):
        send(*target, "--title", "Hi")
    assert not Notification.objects.exists()
