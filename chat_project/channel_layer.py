"""channels_redis's pub/sub layer, with subscriptions and publishes sent to Redis in batches.

Every socket subscribes twice (its own channel and its user's group) and
unsubscribes when it closes. The stock layer sends each as its own command
under one lock, one event-loop turn after another, which caps a process at
a few hundred new sockets a second. Here the changes queued during one turn
go out as one SUBSCRIBE (or UNSUBSCRIBE) with many channels, in the order
they were made. Publishing likewise: the stock layer holds its lock for a
round trip per message, so the bridge's fan-out to many users' groups went
one round trip at a time; the publishes of one turn now go out in one
pipeline, in the order they were made. Reading is the stock layer's.

With several Redis servers (hosts), a channel or group lives on the shard
the stock consistent hash of its name picks, except a group pinned to a
shard by its name (core/sharding.py): a group that every process joins once
per shard so spreads its publishes over all shards (messaging/realtime.py),
where a single group would put them all on one.
"""

from __future__ import annotations

import asyncio
from typing import Any

from channels_redis.pubsub import RedisPubSubChannelLayer, RedisPubSubLoopLayer, RedisSingleShardConnection
from channels_redis.utils import _wrap_close, decode_hosts

from core.batching import Coalescer
from core.sharding import pinned_shard

SUBSCRIBE = "SUBSCRIBE"
UNSUBSCRIBE = "UNSUBSCRIBE"


def runs(changes: list[tuple[str, str]]) -> list[tuple[str, list[str]]]:
    """Group consecutive changes of the same kind, keeping their order."""
    grouped: list[tuple[str, list[str]]] = []
    for command, channel in changes:
        if grouped and grouped[-1][0] == command:
            grouped[-1][1].append(channel)
        else:
            grouped.append((command, [channel]))
    return grouped


class BatchingShardConnection(RedisSingleShardConnection):
    """One Redis connection's subscriptions, changed in batches."""

    def __init__(self, host: Any, channel_layer: Any) -> None:
        super().__init__(host, channel_layer)
        self._changes: Coalescer[tuple[str, str], None] = Coalescer(self._send_changes, "subscription changes")
        self._publishes: Coalescer[tuple[str, bytes], None] = Coalescer(self._send_publishes, "publishes")
        # Channels counted as subscribed whose SUBSCRIBE has not been sent yet.
        self._unsent: dict[str, asyncio.Future[None]] = {}

    async def subscribe(self, channel: str) -> None:
        """Subscribe to a channel; return once the SUBSCRIBE was sent (at once if it was before)."""
        if channel in self._subscribed_to:
            unsent = self._unsent.get(channel)
            if unsent is not None:
                await asyncio.shield(unsent)
            return
        self._subscribed_to.add(channel)
        batch = self._changes.add((SUBSCRIBE, channel))
        self._unsent[channel] = batch
        batch.add_done_callback(lambda _: self._sent(channel, batch))
        await asyncio.shield(batch)

    def _sent(self, channel: str, batch: asyncio.Future[None]) -> None:
        if self._unsent.get(channel) is batch:
            del self._unsent[channel]

    async def unsubscribe(self, channel: str) -> None:
        """Unsubscribe from a channel, without waiting.

        Nothing depends on the UNSUBSCRIBE having been sent (messages for a
        channel nobody here listens to are dropped), and it runs while a
        closing socket's task is being cancelled, where a wait would be cut short.
        """
        if channel in self._subscribed_to:
            self._subscribed_to.discard(channel)
            self._changes.add((UNSUBSCRIBE, channel))

    async def publish(self, channel: str, message: bytes) -> None:
        """Publish a message; the publishes of one event-loop turn share one round trip, in order."""
        await self._publishes.submit((channel, message))

    async def _send_publishes(self, publishes: list[tuple[str, bytes]]) -> None:
        async with self._lock:
            self._ensure_redis()
            async with self._redis.pipeline(transaction=False) as pipe:
                for channel, message in publishes:
                    pipe.publish(channel, message)
                await pipe.execute()

    async def _send_changes(self, changes: list[tuple[str, str]]) -> None:
        async with self._lock:
            try:
                self._ensure_redis()
                self._ensure_receiver()
                for command, channels in runs(changes):
                    if command == SUBSCRIBE:
                        await self._pubsub.subscribe(*channels)
                    else:
                        await self._pubsub.unsubscribe(*channels)
            except BaseException:
                # Not subscribed after all: the next subscribe sends it again.
                for command, channel in changes:
                    if command == SUBSCRIBE:
                        self._subscribed_to.discard(channel)
                raise


class BatchingPubSubLoopLayer(RedisPubSubLoopLayer):
    """The stock per-loop layer, on batching shard connections."""

    def __init__(self, hosts: Any = None, *args: Any, **kwargs: Any) -> None:
        super().__init__(hosts, *args, **kwargs)
        self._shards = [BatchingShardConnection(host, self) for host in decode_hosts(hosts)]

    def _get_shard(self, channel_or_group_name: str) -> Any:
        pinned = pinned_shard(channel_or_group_name)
        if pinned is not None:
            return self._shards[pinned % len(self._shards)]
        return super()._get_shard(channel_or_group_name)


class BatchingPubSubChannelLayer(RedisPubSubChannelLayer):
    """RedisPubSubChannelLayer whose subscriptions are sent in batches (configured in CHANNEL_LAYERS)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # The Redis servers the layer shards over.
        self.shard_count = len(decode_hosts(kwargs.get("hosts", args[0] if args else None)))

    def _get_layer(self) -> BatchingPubSubLoopLayer:
        loop = asyncio.get_running_loop()
        layer = self._layers.get(loop)
        if layer is None:
            layer = self._layers[loop] = BatchingPubSubLoopLayer(*self._args, **self._kwargs, channel_layer=self)
            _wrap_close(self, loop)
        return layer
