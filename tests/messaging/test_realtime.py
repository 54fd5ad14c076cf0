"""Fan-out to the web processes over a channel layer sharded on several Redis servers."""

import asyncio
import uuid
import zlib

import pytest
from channels.layers import get_channel_layer

from chat_project.channel_layer import BatchingPubSubChannelLayer, BatchingPubSubLoopLayer
from core.sharding import pinned_group
from messaging.realtime import WEB_PROCESSES, LocalSockets, fanout_group, push_frames
from tests.support.stack import require_env


def test_a_key_picks_one_part_of_the_group_and_the_keys_spread_over_all():
    keys = [str(uuid.uuid4()) for _ in range(200)]
    assert {fanout_group(key, 1) for key in keys} == {pinned_group(WEB_PROCESSES, 0)}
    parts = {fanout_group(key, 3) for key in keys}
    assert parts == {pinned_group(WEB_PROCESSES, shard) for shard in range(3)}
    assert all(fanout_group(key, 3) == fanout_group(key, 3) for key in keys)
    assert fanout_group(None, 3) == pinned_group(WEB_PROCESSES, 0)


async def test_a_pinned_group_lives_on_its_shard_and_other_names_where_the_hash_puts_them():
    hosts = ["redis://127.0.0.1:1/0", "redis://127.0.0.1:2/0"]
    layer = BatchingPubSubLoopLayer(hosts, prefix="p")
    assert BatchingPubSubChannelLayer(hosts=hosts).shard_count == 2
    for shard in range(4):
        group_channel = layer._get_group_channel_name(pinned_group("g", shard))
        assert layer._get_shard(group_channel) is layer._shards[shard % 2]
    unpinned = [layer._get_shard(f"p__group__user.{n}") for n in range(50)]
    assert set(map(id, unpinned)) == set(map(id, layer._shards))  # the stock hash spreads the rest
    stock_hash = (zlib.crc32(b"p__group__user.7") & 0xFFF) // 2048
    assert layer._shards.index(layer._get_shard("p__group__user.7")) == stock_hash


class FakeSocket:
    def __init__(self) -> None:
        self.channel_name = f"socket.{uuid.uuid4().hex}"
        self.texts: asyncio.Queue[str] = asyncio.Queue()

    async def send_text(self, text: str) -> None:
        await self.texts.put(text)


@pytest.fixture
async def two_shards(settings):
    # Two shards on one server: the pub/sub channels of the group's parts have names of their own.
    url = require_env("REDIS_URL")
    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "chat_project.channel_layer.BatchingPubSubChannelLayer",
            "CONFIG": {"hosts": [url, url], "prefix": f"test-{uuid.uuid4().hex[:8]}"},
        }
    }
    yield
    await get_channel_layer().flush()


async def test_a_process_hears_the_frames_of_keys_on_every_shard_in_order_per_key(two_shards):
    sockets = LocalSockets()
    socket = FakeSocket()
    await sockets.add("7", socket)
    keys = {fanout_group(key, 2): key for key in (str(uuid.uuid4()) for _ in range(50))}
    assert len(keys) == 2
    try:
        for n in range(3):
            for key in keys.values():
                await push_frames([(["7"], {"type": "t", "key": key, "n": n}, None)], key)
        texts = [await asyncio.wait_for(socket.texts.get(), 5) for _ in range(6)]
        for key in keys.values():
            assert [text for text in texts if key in text] == [
                f'{{"type":"t","key":"{key}","n":{n}}}' for n in range(3)
            ]
    finally:
        assert sockets._listener is not None
        sockets._listener.cancel()
