"""Presence through the real stack: two daphne processes on one port, Redis, PostgreSQL.

Bob's sockets land on both web processes; Alice, his direct partner, is
told when he comes online and goes offline (coalesced: a reconnect within
CHAT_PRESENCE_NOTIFY_SECONDS is no change), and so is every REST answer;
Gus, who shares only a group with him, is told nothing. Presence frames go
from the web process that sees the change through the channel layer, not
through Kafka, so the bridge plays no part here.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import psutil
import pytest

from tests.integration.test_web_processes import children_of, open_on_new_process, wait_accepting
from tests.support.client import Socket, User, conversation, register
from tests.support.stack import Proc, Stack

pytestmark = pytest.mark.integration

WINDOW = 1.0


@pytest.fixture(scope="module")
def presence_web(stack: Stack) -> Iterator[tuple[Proc, str]]:
    # A Redis prefix of its own: no other web process of the session takes its due frames with another window.
    web, base = stack.start_web(
        processes=2,
        env={"CHAT_PRESENCE_NOTIFY_SECONDS": str(WINDOW), "REDIS_PREFIX": f"chat-presence-{uuid.uuid4().hex[:8]}"},
    )
    wait_accepting(web, *children_of(web, 2))
    yield web, base
    web.terminate()


def state_of(viewer: User, user: User, conversation_id: str) -> tuple[bool, str | None]:
    """Return what REST says of the user's presence: from /api/users/{id}/, checked against the conversation."""
    answer = viewer.api("GET", f"/api/users/{user.id}/").json()
    participants = viewer.api("GET", f"/api/conversations/{conversation_id}/").json()["participants"]
    (participant,) = [p for p in participants if p["id"] == user.id]
    assert (participant["online"], participant["lastSeenAt"]) == (answer["online"], answer["lastSeenAt"])
    return answer["online"], answer["lastSeenAt"]


async def test_a_direct_partner_is_told_coalesced_and_a_group_member_is_not(presence_web):
    web, base = presence_web
    parent = psutil.Process(web.popen.pid)
    alice, bob, gus = register(base, "alice"), register(base, "bob"), register(base, "gus")
    direct = conversation(alice, bob)
    conversation(gus, bob, alice, title="no presence here")
    a, g = await alice.ws(), await gus.ws()
    bobs: list[Socket] = []
    try:

        def told() -> list[tuple[bool, str | None]]:
            return [(f["online"], f["lastSeenAt"]) for f in a.of_type("presence") if f["userId"] == bob.id]

        # Bob comes online: Alice is told at once.
        first_pid = await open_on_new_process(bob, parent, set(), bobs)
        await a.wait_type("presence", userId=bob.id, online=True)
        assert told() == [(True, None)]
        assert state_of(alice, bob, direct["id"]) == (True, None)

        # A socket of his on the other web process too: his first closing there is not going offline.
        await open_on_new_process(bob, parent, {first_pid}, bobs)
        for socket in bobs[:-1]:
            await socket.close()
        left_at = time.time()
        await bobs[-1].close()
        offline = await a.wait_type("presence", userId=bob.id, online=False)
        assert offline["lastSeenAt"] >= time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(int(left_at)))
        assert told() == [(True, None), (False, offline["lastSeenAt"])]
        assert state_of(alice, bob, direct["id"]) == (False, offline["lastSeenAt"])

        # Back: told online (a window after the last frame at the soonest).
        back = await bob.ws()
        await a.wait_for(lambda f: f.get("type") == "presence", count=3)
        assert told()[2] == (True, None)
        # A reload within the window tells nobody anything; leaving for good does, a window later.
        await back.close()
        back = await bob.ws()
        gone_at = time.time()
        await back.close()
        await a.wait_for(lambda f: f.get("type") == "presence", count=4, timeout=10 * WINDOW)
        last = told()[3]
        assert last[0] is False
        assert last[1] >= time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(int(gone_at)))
        assert len(told()) == 4  # nothing about the reload: it came before this frame

        # Gus shares only a group with Bob: no presence frame at all, while Alice got every one.
        assert g.of_type("presence") == []
    finally:
        for socket in [a, g, *bobs]:
            await socket.close()
