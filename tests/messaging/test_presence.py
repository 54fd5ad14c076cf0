"""Presence in Redis: sockets count while their heartbeat is fresh, and age out when a process dies."""

import asyncio
import uuid

import pytest

from messaging import presence
from tests.support.stack import require_env


@pytest.fixture
def short_ttl(settings):
    settings.REDIS_URL = require_env("REDIS_URL")
    settings.REDIS_PREFIX = f"test-{uuid.uuid4().hex[:8]}"
    settings.CHAT_PRESENCE_TTL_SECONDS = 1.0


async def test_online_until_the_last_socket_closes(short_ttl):
    await presence.presence_mark(1, "socket-a")
    await presence.presence_mark(1, "socket-b")
    assert await presence.online_user_ids([1, 2]) == {"1"}
    await presence.presence_clear(1, "socket-a")
    assert await presence.online_user_ids([1]) == {"1"}
    await presence.presence_clear(1, "socket-b")
    assert await presence.online_user_ids([1]) == set()


async def test_a_socket_of_a_crashed_process_ages_out(short_ttl):
    await presence.presence_mark(7, "socket-of-a-dead-process")  # and then no heartbeat, no clear
    assert await presence.online_user_ids([7]) == {"7"}
    await asyncio.sleep(1.2)
    assert await presence.online_user_ids([7]) == set()


async def test_heartbeats_keep_a_socket_online(short_ttl):
    for _ in range(4):
        await presence.presence_mark(9, "live-socket")
        await asyncio.sleep(presence.heartbeat_seconds())
    assert await presence.online_user_ids([9]) == {"9"}


async def test_one_heartbeat_keeps_every_socket_of_the_process_online(short_ttl):
    sockets = [(20, "a1"), (20, "a2"), (21, "b1"), (22, "c1")]
    await asyncio.gather(*(presence.socket_opened(user, socket) for user, socket in sockets))
    assert await presence.online_user_ids([20, 21, 22]) == {"20", "21", "22"}
    await asyncio.sleep(2.5)  # two and a half TTLs: only the process's heartbeat keeps them
    assert await presence.online_user_ids([20, 21, 22]) == {"20", "21", "22"}
    await presence.socket_closed(20, "a1")
    assert await presence.online_user_ids([20]) == {"20"}  # until the last socket closes
    for user, socket in sockets[1:]:
        await presence.socket_closed(user, socket)
    assert await presence.online_user_ids([20, 21, 22]) == set()


async def test_a_heartbeat_never_brings_back_a_closed_socket(short_ttl):
    await presence.socket_opened(30, "s")
    closing = asyncio.ensure_future(presence.socket_closed(30, "s"))
    await presence.process_presence().refresh()  # queued after the close
    await closing
    assert await presence.online_user_ids([30]) == set()


async def test_sockets_of_a_process_that_stops_beating_age_out(short_ttl):
    await presence.socket_opened(40, "orphan")
    registry = presence.process_presence()
    registry.heartbeat.cancel()  # as if the process had died: no beat, no close
    registry.sockets.pop("orphan")
    assert await presence.online_user_ids([40]) == {"40"}
    await asyncio.sleep(1.2)
    assert await presence.online_user_ids([40]) == set()
    await presence.socket_opened(40, "new")  # a connect drops what aged out
    assert await presence._client().zrange(presence.presence_key(40), 0, -1) == [b"new"]
    await presence.socket_closed(40, "new")
