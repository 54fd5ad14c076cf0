"""messages_per_minute: what the staff page shows as messages per second."""

from datetime import UTC, datetime, timedelta

from django.contrib.auth import get_user_model

from messaging import services
from messaging.models import Message
from messaging.selectors import messages_per_minute

User = get_user_model()


def test_counts_each_of_the_last_minutes_oldest_first(db):
    alice = User.objects.create_user(username="alice", password="x")
    bob = User.objects.create_user(username="bob", password="x")
    direct, _ = services.conversation_create(creator=alice, participant_ids=[bob.pk])
    now = datetime(2030, 1, 1, 12, 30, 20, tzinfo=UTC)
    # Minutes ago: 0 (this minute so far), 0, 2, 9 (the first counted), 10 (too old), and one in the future.
    ages = [timedelta(seconds=5), timedelta(seconds=15), timedelta(minutes=2), timedelta(minutes=9, seconds=10)]
    ages += [timedelta(minutes=10, seconds=30), timedelta(seconds=-30)]
    for i, age in enumerate(ages):
        message, _ = services.message_send(
            sender=alice, conversation_id=direct.pk, content="x", client_message_id=f"c{i}"
        )
        Message.objects.filter(pk=message.pk).update(created_at=now - age)

    counts = messages_per_minute(minutes=10, now=now)
    assert [minute for minute, _ in counts] == [
        datetime(2030, 1, 1, 12, 21, tzinfo=UTC) + timedelta(minutes=i) for i in range(10)
    ]
    assert [n for _, n in counts] == [1, 0, 0, 0, 0, 0, 0, 1, 0, 2]
