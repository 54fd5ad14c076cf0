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
