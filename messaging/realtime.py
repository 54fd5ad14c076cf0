"""Pushing frames to users' sockets: one publish to every web process, fanned out in memory.

Each web process keeps its open sockets by user (`LocalSockets`) and
listens on one channel of its own, a member of the WEB_PROCESSES group. The
bridge publishes a batch of frames once, to that group; every process
sends each frame, serialized once, to its own sockets of the frame's users.
So a message to a group of N members costs one publish and one JSON
encoding, not N of each (Zulip's Tornado shards and Centrifugo's nodes
deliver the same way). The channel layer is a fast path, not a store: a
frame that never reaches a socket comes again by redelivery or `sync`. A
`message.new` a socket already got is not written to it again (repeats.py).

With the channel layer sharded over several Redis servers, the group has
one part pinned to each shard (core/sharding.py) and every process listens
on all of them; a batch goes to the part its key picks, so the publishes
spread over the shards while the frames of one key (one conversation, one
sender) keep their order through one shard.
"""

from __future__ import annotations

import asyncio
import json
import logging
import zlib
from collections import defaultdict
from collections.abc import Iterable
from typing import Any, Protocol

from channels.layers import get_channel_layer

from core.batching import PerLoop
from core.sharding import pinned_group

from .metrics import REPEATS_HELD_BACK
from .repeats import SentSeqs, seq_key

logger = logging.getLogger(__name__)

# The channel-layer group of every web process's listening channel.
WEB_PROCESSES = "chat.web-processes"
FANOUT_EVENT = "chat.fanout"
# How long a process waits before listening again after the channel layer failed.
RELISTEN_SECONDS = 1.0

Push = tuple[Iterable[int | str], dict[str, Any], str | None]
# The (conversation, seq) of a message.new frame, by which a socket's repeats are told.
Key = tuple[str, int]


def encode_frame(frame: dict[str, Any]) -> str:
    """Serialize a frame as every socket gets it."""
    return json.dumps(frame, separators=(",", ":"), ensure_ascii=False)


def shard_count(layer: Any) -> int:
    """Return the number of Redis servers a channel layer shards over (1 for a layer that does not say)."""
    return int(getattr(layer, "shard_count", 1))


def fanout_group(key: str | None, shards: int) -> str:
    """Return the part of the web processes' group that carries the frames of `key` (no key: the first)."""
    index = zlib.crc32(key.encode()) % shards if key is not None and shards > 1 else 0
    return pinned_group(WEB_PROCESSES, index)


async def push_frame(
    user_ids: Iterable[int | str], frame: dict[str, Any], exclude_channel: str | None = None, key: str | None = None
) -> None:
    """Send a frame to every socket of every given user, except the excluded socket."""
    await push_frames([(user_ids, frame, exclude_channel)], key)


async def push_frames(pushes: list[Push], key: str | None = None) -> None:
    """Send frames, each to every socket of its users except its excluded socket, in order, in one publish.

    Frames pushed with the same `key` reach each process in the order they were pushed.
    """
    batch = [
        [list(dict.fromkeys(str(u) for u in user_ids)), encode_frame(frame), exclude]
        for user_ids, frame, exclude in pushes
    ]
    if batch:
        # The keys travel beside the pushes, whose shape web processes of the previous release unpack.
        keys = [seq_key(frame) for _users, frame, _exclude in pushes]
        layer = get_channel_layer()
        await layer.group_send(
            fanout_group(key, shard_count(layer)), {"type": FANOUT_EVENT, "pushes": batch, "keys": keys}
        )


class Socket(Protocol):
    """What the fan-out needs of a socket: its channel name, what it was sent, and a way to send it text."""

    channel_name: str
    sent: SentSeqs

    async def send_text(self, text: str) -> None: ...


class LocalSockets:
    """This web process's open sockets by user, and the channel through which it hears frames for them."""

    def __init__(self) -> None:
        self.by_user: dict[str, dict[str, Socket]] = defaultdict(dict)
        self._listening: asyncio.Future[None] | None = None
        self._listener: asyncio.Task[None] | None = None

    async def add(self, user_id: int | str, socket: Socket) -> None:
        """Register an open socket; return once this process hears the frames pushed to its user."""
        if self._listening is None:
            self._listening = asyncio.ensure_future(self._listen())
        await asyncio.shield(self._listening)
        self.by_user[str(user_id)][socket.channel_name] = socket

    def remove(self, user_id: int | str, socket: Socket) -> None:
        """Forget a socket that closed."""
        sockets = self.by_user.get(str(user_id))
        if sockets is not None:
            sockets.pop(socket.channel_name, None)
            if not sockets:
                del self.by_user[str(user_id)]

    def user_ids(self) -> list[str]:
        """Return the users with an open socket in this process."""
        return list(self.by_user)

    async def send(self, user_id: int | str, text: str, exclude: str | None = None, key: Key | None = None) -> int:
        """Send a serialized frame to this process's sockets of one user; with a key, only to those without it.

        Return to how many sockets it went.
        """
        sent = 0
        for channel_name, socket in list(self.by_user.get(str(user_id), {}).items()):
            if channel_name == exclude:
                continue
            if key is not None and not socket.sent.first(*key):
                REPEATS_HELD_BACK.inc()
                continue
            try:
                await socket.send_text(text)
                sent += 1
            except Exception:  # closing as we send: it will get the frame by sync
                logger.debug("Could not send to socket %s", channel_name, exc_info=True)
        return sent

    async def deliver(self, pushes: list[list[Any]], keys: list[Any] | None = None) -> None:
        """Send a published batch of frames to this process's sockets of their users, in order."""
        for (user_ids, text, exclude), key in zip(pushes, keys or [None] * len(pushes), strict=True):
            for user_id in user_ids:
                if user_id in self.by_user:
                    await self.send(user_id, text, exclude, (key[0], key[1]) if key else None)
            # Let the server write each frame out before the next: a batch queued whole would
            # count as unsent bytes at once, and close readers that keep up (1013) as if they did not.
            await asyncio.sleep(0)

    async def _listen(self) -> None:
        layer = get_channel_layer()
        channel = await layer.new_channel("chat-web.")
        for shard in range(shard_count(layer)):
            await layer.group_add(pinned_group(WEB_PROCESSES, shard), channel)
        self._listener = asyncio.ensure_future(self._receive(channel))

    async def _receive(self, channel: str) -> None:
        layer = get_channel_layer()
        while True:
            try:
                event = await layer.receive(channel)
                await self.deliver(event["pushes"], event.get("keys"))
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.warning("Receiving pushed frames failed; listening again", exc_info=True)
                await asyncio.sleep(RELISTEN_SECONDS)


_local: PerLoop[LocalSockets] = PerLoop(LocalSockets)


def local_sockets() -> LocalSockets:
    """Return this process's (event loop's) socket registry."""
    return _local.get()
