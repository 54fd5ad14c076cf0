"""Presence frames to direct partners, coalesced: the policy alone, then with its state in the real Redis.

The clock is passed in (`now`), so the tests step through windows without sleeping.
"""

import time
import uuid
from datetime import UTC, datetime

import pytest
from django.contrib.auth import get_user_model

from core.parsing import iso_utc
from messaging import presence, selectors, services
from messaging.presence_notify import PresenceNotifier, Watched, next_frame
from tests.support.stack import require_env

WINDOW = 10.0
TTL = 60.0


def iso(epoch: float) -> str:
    return iso_utc(datetime.fromtimestamp(epoch, tz=UTC))


### The policy ###


def test_someone_never_announced_is_announced_online_at_once():
    assert next_frame(Watched("1", live=True), WINDOW) == WINDOW  # long past: now


def test_nothing_to_tell_when_the_watchers_know_the_state():
    assert next_frame(Watched("1", live=True, told_online=True, told_at=500.0), WINDOW) is None
    assert next_frame(Watched("1", live=False, told_online=False, told_at=500.0, seen=400.0), WINDOW) is None


def test_going_offline_is_told_a_window_after_the_close():
    user = Watched("1", live=False, told_online=True, told_at=100.0, seen=500.0)
    assert next_frame(user, WINDOW) == 510.0


def test_at_most_one_frame_per_window_about_a_user():
    back = Watched("1", live=True, told_online=False, told_at=500.0, seen=495.0)
    assert next_frame(back, WINDOW) == 510.0  # told offline at 500: online no sooner than 510
    gone = Watched("1", live=False, told_online=True, told_at=500.0, seen=501.0)
    assert next_frame(gone, WINDOW) == 511.0


def test_an_unknown_close_time_does_not_hold_the_frame_back_for_ever():
    assert next_frame(Watched("1", live=False, told_online=True, told_at=100.0), WINDOW) == 110.0


### With Redis ###


class Recorder:
    """The notifier's database and fan-out: the partners given, and what it pushed and recorded."""

    def __init__(self, partners: dict[str, set[str]]) -> None:
        self.partners_of = partners
        self.pushed: list[tuple[list[str], dict]] = []
        self.last_seen: dict[str, float] = {}

    async def partners(self, user_ids):
        return {u: self.partners_of[u] for u in user_ids if u in self.partners_of}

    async def record_last_seen(self, seen):
        self.last_seen.update(seen)

    async def push(self, pushes):
        self.pushed += [(sorted(users), frame) for users, frame, _exclude in pushes]

    def notifier(self) -> PresenceNotifier:
        return PresenceNotifier(partners=self.partners, record_last_seen=self.record_last_seen, push=self.push)

    def frames(self) -> list[tuple[str, bool]]:
        return [(frame["userId"], frame["online"]) for _users, frame in self.pushed]


@pytest.fixture
def redis_settings(settings):
    settings.REDIS_URL = require_env("REDIS_URL")
    settings.REDIS_PREFIX = f"test-{uuid.uuid4().hex[:8]}"
    settings.CHAT_PRESENCE_TTL_SECONDS = TTL
    settings.CHAT_PRESENCE_NOTIFY_SECONDS = WINDOW


async def opened(notifier, user, socket, now):
    marked = await presence.mark_sockets([(user, socket)], now, prune=True)
    await notifier.notify(marked.came_online, now)
    return marked


async def closed(notifier, user, socket, now):
    gone = await presence.remove_sockets([(user, socket)], now)
    await notifier.notify(gone, now)
    return gone


async def test_online_at_once_offline_a_window_after_the_close(redis_settings):
    seen = Recorder({"7": {"1", "2"}})
    notifier = seen.notifier()
    t = time.time()
    assert (await opened(notifier, "7", "s1", t)).came_online == ["7"]
    assert seen.pushed == [(["1", "2"], {"type": "presence", "userId": "7", "online": True, "lastSeenAt": None})]
    await closed(notifier, "7", "s1", t + 20)
    assert len(seen.pushed) == 1  # not yet: a reconnect may follow
    await notifier.poll(t + 25)
    assert len(seen.pushed) == 1
    await notifier.poll(t + 30)
    users, frame = seen.pushed[1]
    assert users == ["1", "2"]
    assert frame["online"] is False
    assert frame["lastSeenAt"] == iso(t + 20)


async def test_a_reconnect_within_the_window_is_no_change_and_a_real_departure_is(redis_settings):
    seen = Recorder({"7": {"1"}})
    notifier = seen.notifier()
    t = time.time()
    await opened(notifier, "7", "s1", t)
    await closed(notifier, "7", "s1", t + 20)
    assert (await opened(notifier, "7", "s2", t + 22)).came_online == ["7"]  # back within the window
    await notifier.poll(t + 31)
    assert seen.frames() == [("7", True)]  # the blip told nobody anything
    await closed(notifier, "7", "s2", t + 40)
    await notifier.poll(t + 50)
    assert seen.frames() == [("7", True), ("7", False)]


async def test_only_the_last_socket_closing_is_going_offline(redis_settings):
    seen = Recorder({"7": {"1"}})
    notifier = seen.notifier()
    t = time.time()
    await opened(notifier, "7", "laptop", t)
    assert (await opened(notifier, "7", "phone", t + 1)).came_online == []
    assert await closed(notifier, "7", "laptop", t + 2) == []
    await notifier.poll(t + 30)
    assert seen.frames() == [("7", True)]
    assert await closed(notifier, "7", "phone", t + 31) == ["7"]
    await notifier.poll(t + 42)
    assert seen.frames() == [("7", True), ("7", False)]


async def test_back_online_soon_after_an_offline_frame_waits_for_the_window(redis_settings):
    seen = Recorder({"7": {"1"}})
    notifier = seen.notifier()
    t = time.time()
    await opened(notifier, "7", "s1", t)
    await closed(notifier, "7", "s1", t + 1)
    await notifier.poll(t + 11)  # told offline at t + 11
    await opened(notifier, "7", "s2", t + 12)
    assert seen.frames() == [("7", True), ("7", False)]
    await notifier.poll(t + 20)
    assert len(seen.pushed) == 2
    await notifier.poll(t + 21)
    assert seen.frames() == [("7", True), ("7", False), ("7", True)]


async def test_a_user_whose_process_died_is_told_offline_with_the_last_heartbeat(redis_settings):
    seen = Recorder({"7": {"1"}})
    notifier = seen.notifier()
    t = time.time()
    await opened(notifier, "7", "s1", t)
    await presence.mark_sockets([("7", "s1")], t + 20)  # a heartbeat, then the process dies: no close
    await notifier.poll(t + 70)
    assert seen.frames() == [("7", True)]  # still within the TTL of the last heartbeat
    await notifier.poll(t + 81)  # the sockets aged out: gone since t + 20, told a window later
    assert seen.last_seen == {"7": t + 20}
    await notifier.poll(t + 91)
    assert seen.frames() == [("7", True), ("7", False)]
    assert seen.pushed[-1][1]["lastSeenAt"] == iso(t + 20)


async def test_two_processes_deciding_at_once_send_one_frame(redis_settings):
    seen = Recorder({"7": {"1"}})
    one, other = seen.notifier(), seen.notifier()
    t = time.time()
    await presence.mark_sockets([("7", "s1")], t, prune=True)
    assert sorted([await one.notify(["7"], t), await other.notify(["7"], t)]) == [0, 1]
    assert seen.frames() == [("7", True)]


async def test_a_change_between_the_decision_and_the_claim_is_not_announced(redis_settings):
    seen = Recorder({"7": {"1"}})
    notifier = seen.notifier()
    t = time.time()
    await presence.mark_sockets([("7", "s1")], t, prune=True)
    await presence.remove_sockets([("7", "s1")], t)  # gone before the decision about coming online claims
    assert await notifier.notify(["7"], t) == 0
    assert seen.pushed == []


async def test_the_notifier_records_when_the_last_socket_closed(redis_settings):
    seen = Recorder({})
    notifier = seen.notifier()
    await notifier.went_offline(["7", "8"], 1234.5)
    assert seen.last_seen == {"7": 1234.5, "8": 1234.5}


### Who is told ###


def test_direct_partners_are_told_and_group_members_are_not(db):
    users = get_user_model().objects
    a, b, c, d = (users.create_user(username=name, password="x") for name in "abcd")
    services.conversation_create(creator=a, participant_ids=[b.pk])
    services.conversation_create(creator=c, participant_ids=[a.pk])
    services.conversation_create(creator=a, participant_ids=[b.pk, c.pk, d.pk], title="group")
    partners = selectors.direct_partner_ids([a.pk, b.pk, d.pk])
    assert partners == {str(a.pk): {str(b.pk), str(c.pk)}, str(b.pk): {str(a.pk)}}
