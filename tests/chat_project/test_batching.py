"""Batched requests: the coalescer, and the channel layer that sends its subscriptions in batches."""

import asyncio
import uuid

import pytest
import redis.asyncio as redis

from chat_project.channel_layer import BatchingPubSubChannelLayer, runs
from core.batching import Coalescer, KeyedQueue
from tests.support.stack import require_env


async def test_items_of_one_moment_are_served_together_in_order():
    calls = []

    async def serve(items):
        calls.append(list(items))
        await asyncio.sleep(0.01)
        return {item: item * 2 for item in items}

    coalescer = Coalescer(serve, "numbers")
    first = await asyncio.gather(*(coalescer.submit(n) for n in range(5)))
    assert calls == [[0, 1, 2, 3, 4]]
    assert all(result[n] == n * 2 for n, result in enumerate(first))
    # While a batch is served, the next one fills.
    early = asyncio.ensure_future(coalescer.submit(10))
    await asyncio.sleep(0)
    later = [asyncio.ensure_future(coalescer.submit(n)) for n in (11, 12)]
    await asyncio.gather(early, *later)
    assert calls[1:] == [[10], [11, 12]]


async def test_a_failed_batch_fails_its_items_only():
    async def serve(items):
        if "bad" in items:
            raise ValueError("no")
        return len(items)

    coalescer = Coalescer(serve, "words")
    results = await asyncio.gather(coalescer.submit("bad"), coalescer.submit("x"), return_exceptions=True)
    assert all(isinstance(r, ValueError) for r in results)
    assert await coalescer.submit("good") == 1


async def test_a_key_s_items_wait_for_its_call_under_way_then_go_together_and_other_keys_do_not_wait():
    calls = []
    release = asyncio.Event()

    async def serve(key, items):
        calls.append((key, list(items)))
        if len(calls) == 1:
            await release.wait()  # holds key "a" while more of it arrives
        if "bad" in items:
            raise ValueError("no")
        return [f"{key}:{item}" for item in items]

    queue = KeyedQueue(serve)
    first = queue.add("a", 1)
    await asyncio.sleep(0)
    rest = [queue.add("a", 2), queue.add("a", 3)]
    other = await queue.add("b", 9)  # not held up by "a"
    release.set()
    assert [await first, *(await asyncio.gather(*rest))] == ["a:1", "a:2", "a:3"] and other == "b:9"
    assert calls == [("a", [1]), ("b", [9]), ("a", [2, 3])]
    with pytest.raises(ValueError):
        await queue.add("a", "bad")
    assert await queue.add("a", 4) == "a:4"


def test_runs_keep_the_order_of_changes():
    changes = [("SUBSCRIBE", "a"), ("SUBSCRIBE", "b"), ("UNSUBSCRIBE", "a"), ("SUBSCRIBE", "a")]
    assert runs(changes) == [("SUBSCRIBE", ["a", "b"]), ("UNSUBSCRIBE", ["a"]), ("SUBSCRIBE", ["a"])]


@pytest.fixture
async def layer():
    layer = BatchingPubSubChannelLayer(hosts=[require_env("REDIS_URL")], prefix=f"test-{uuid.uuid4().hex[:8]}")
    yield layer
    await layer.flush()


async def subscriber_count(channel: str) -> int:
    client = redis.from_url(require_env("REDIS_URL"))
    try:
        ((_name, count),) = await client.pubsub_numsub(channel)
        return count
    finally:
        await client.aclose()


async def test_sockets_joining_at_once_subscribe_in_one_command_and_get_group_messages(layer, monkeypatch):
    sent = []
    shard = layer._get_layer()._shards[0]
    original = shard._send_changes

    async def spy(changes):
        sent.append(len(changes))
        await original(changes)

    monkeypatch.setattr(shard._changes, "_serve", spy)

    async def join(n):
        channel = await layer.new_channel()
        await layer.group_add(f"user.{n}", channel)
        return channel

    channels = await asyncio.gather(*(join(n) for n in range(200)))
    assert sum(sent) == 400 and len(sent) <= 3  # two subscriptions per socket, in a few commands
    await layer.group_send("user.7", {"type": "chat.frame", "n": 7})
    assert (await asyncio.wait_for(layer.receive(channels[7]), 5))["n"] == 7


async def test_a_group_left_and_joined_again_still_gets_messages(layer):
    channel = await layer.new_channel()
    await layer.group_add("g", channel)
    await layer.group_discard("g", channel)  # the unsubscribe is queued, not awaited
    await layer.group_add("g", channel)  # and sent after it, so the group stays subscribed
    await layer.group_send("g", {"type": "x", "n": 1})
    assert (await asyncio.wait_for(layer.receive(channel), 5))["n"] == 1
    group_channel = layer._get_layer()._get_group_channel_name("g")
    assert await subscriber_count(group_channel) == 1
    await layer.group_discard("g", channel)
    for _ in range(50):
        if await subscriber_count(group_channel) == 0:
            break
        await asyncio.sleep(0.02)
    assert await subscriber_count(group_channel) == 0
