"""The channel layer sharded over two Redis servers, with the sender and the receiver on two web processes.

REDIS_URL names both servers; the web processes' group has a part on each
(core/sharding.py) and the bridge publishes each conversation's frames to
the part its key picks. Messages and their receipts still go WebSocket ->
daphne -> PostgreSQL -> Kafka -> bridge -> Redis (either shard) -> the
other web process -> WebSocket, in order, whichever shard carries them.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import pytest
import redis

from messaging.realtime import WEB_PROCESSES, fanout_group
from tests.support.client import Socket, conversation, register
from tests.support.redis_server import redis_server
from tests.support.stack import Stack, free_port, require_env

pytestmark = pytest.mark.integration

SHARDS = 2


@dataclass
class Sharded:
    stack: Stack
    bases: list[str]
    redis_urls: list[str]


@pytest.fixture(scope="module")
def sharded() -> Iterator[Sharded]:
    port = int(os.environ.get("TEST_REDIS_SHARD_PORT") or free_port())
    with redis_server(port, "redis-shard") as second:
        urls = [require_env("REDIS_URL"), second]
        # No redelivery within the test: only the live path through the shards can deliver.
        stack = Stack.create("sharded", REDIS_URL=",".join(urls), CHAT_REDELIVER_AFTER_SECONDS="600")
        try:
            # The bridge and both web processes start together: each waits for its own readiness.
            with ThreadPoolExecutor(3) as pool:
                bridge = pool.submit(stack.start_bridge)
                webs = [pool.submit(stack.start_web) for _ in range(2)]
                bridge.result()
                bases = [web.result()[1] for web in webs]
            yield Sharded(stack, bases, urls)
        finally:
            stack.stop()


def publishes(url: str) -> int:
    """PUBLISH commands a Redis server has run since it started."""
    client = redis.Redis.from_url(url)
    try:
        return int(client.info("commandstats").get("cmdstat_publish", {}).get("calls", 0))
    finally:
        client.close()


def listeners(url: str, prefix: str, shard: int) -> int:
    """Subscribers on this server to the part of the web processes' group pinned to `shard`."""
    client = redis.Redis.from_url(url)
    try:
        ((_name, count),) = client.pubsub_numsub(f"{prefix}__group__{WEB_PROCESSES}.shard{shard}")
        return int(count)
    finally:
        client.close()


async def test_messages_and_receipts_cross_web_processes_through_both_shards(sharded: Sharded):
    web_a, web_b = sharded.bases
    alice, bob, carol = (register(web_a, name) for name in ("alice", "bob", "carol"))
    # Group conversations until their keys pick both parts of the group.
    by_part: dict[str, str] = {}
    for n in range(20):
        group = conversation(alice, bob, carol, title=f"shards {n}")
        by_part.setdefault(fanout_group(group["id"], SHARDS), group["id"])
        if len(by_part) == SHARDS:
            break
    assert len(by_part) == SHARDS
    before = [publishes(url) for url in sharded.redis_urls]
    a = await Socket.open(web_a, alice.token)
    b = await Socket.open(web_b, bob.token)
    try:
        for conversation_id in by_part.values():
            acks = [await a.send_message(conversation_id, f"message {n}") for n in range(3)]
            arrived = await b.wait_for(
                lambda f, c=conversation_id: f.get("type") == "message.new" and f["message"]["conversationId"] == c,
                count=3,
                timeout=30,
            )
            assert [f["message"] for f in arrived] == [ack["message"] for ack in acks]  # in order, once each
            await b.send({"type": "message.received", "conversationId": conversation_id, "upToSeq": 3})
            await a.wait_type("message.status", timeout=30, conversationId=conversation_id, upToSeq=3, userId=bob.id)
        # Both servers carried fan-out publishes, and both web processes listen on each server's part.
        after = [publishes(url) for url in sharded.redis_urls]
        assert all(a > b for a, b in zip(after, before, strict=True)), (before, after)
        prefix = sharded.stack.env()["REDIS_PREFIX"]
        assert [listeners(url, prefix, shard) for shard, url in enumerate(sharded.redis_urls)] == [2, 2]
    finally:
        await a.close()
        await b.close()
