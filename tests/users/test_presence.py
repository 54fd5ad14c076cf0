"""Users in answers carry `online` (a socket open now) and `lastSeenAt` (when the last one closed)."""

import time
import uuid
from datetime import UTC, datetime

import pytest
import redis
from django.contrib.auth import get_user_model

from messaging import selectors, services
from tests.support.stack import free_port, require_env
from users.presence import presence_key
from users.selectors import user_get_active, users_search
from users.services import profile_set_display_name, users_last_seen_set


@pytest.fixture
def redis_settings(settings):
    settings.REDIS_URL = require_env("REDIS_URL")
    settings.REDIS_PREFIX = f"test-{uuid.uuid4().hex[:8]}"


def test_online_while_a_socket_is_open_else_the_last_close(redis_settings, db):
    users = get_user_model().objects
    ann, ben = users.create_user(username="ann", password="x"), users.create_user(username="ben", password="x")
    # Never seen.
    answer = user_get_active(user_id=ann.pk)
    assert (answer["online"], answer["lastSeenAt"]) == (False, None)
    closed_at = datetime(2025, 11, 11, 22, 30, 0, 123000, tzinfo=UTC)
    users_last_seen_set(user_ids=[ann.pk, ben.pk], at=closed_at)
    assert user_get_active(user_id=ann.pk)["lastSeenAt"] == "2025-11-11T22:30:00.123Z"
    # A socket open now (a member of the user's set, as a web process marks it): online, and no lastSeenAt.
    redis.Redis.from_url(require_env("REDIS_URL")).zadd(presence_key(ann.pk), {"socket": time.time()})
    answer = user_get_active(user_id=ann.pk)
    assert (answer["online"], answer["lastSeenAt"]) == (True, None)
    found = {u["username"]: u for u in users_search(search="")}
    assert (found["ann"]["online"], found["ben"]["online"]) == (True, False)
    assert found["ben"]["lastSeenAt"] == "2025-11-11T22:30:00.123Z"
    # And in conversation answers, per participant.
    direct, _ = services.conversation_create(creator=ann, participant_ids=[ben.pk])
    (summary,) = selectors.conversation_summaries([direct])
    states = {p["username"]: (p["online"], p["lastSeenAt"]) for p in summary["participants"]}
    assert states == {"ann": (True, None), "ben": (False, "2025-11-11T22:30:00.123Z")}


def test_last_seen_keeps_the_display_name_and_skips_users_that_are_gone(db):
    users = get_user_model().objects
    ann = users.create_user(username="ann", password="x")
    profile_set_display_name(user=ann, display_name="Ann")
    at = datetime(2025, 1, 1, tzinfo=UTC)
    users_last_seen_set(user_ids=[ann.pk, ann.pk + 1000], at=at)
    ann.profile.refresh_from_db()
    assert (ann.profile.display_name, ann.profile.last_seen_at) == ("Ann", at)


def test_answers_go_on_without_redis_showing_everyone_offline(db, settings):
    settings.REDIS_URL = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    ann = get_user_model().objects.create_user(username="ann", password="x")
    answer = user_get_active(user_id=ann.pk)
    assert (answer["username"], answer["online"], answer["lastSeenAt"]) == ("ann", False, None)
