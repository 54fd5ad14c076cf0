"""Pushing frames to users' sockets through the channel layer.

Every socket joins the group of its user; everything addressed to a user is
sent to that group. Group names come from `user_group` and nowhere else.
The channel layer is a fast path, not a store: a frame that never reaches a
socket is recovered by the client's `sync`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Iterable
from typing import Any

from channels.layers import get_channel_layer

FRAME_EVENT = "chat.frame"


def user_group(user_id: int | str) -> str:
    """Return the channel-layer group of one user's sockets."""
    return f"user.{user_id}"


Push = tuple[Iterable[int | str], dict[str, Any], str | None]


async def push_frame(user_ids: Iterable[int | str], frame: dict[str, Any], exclude_channel: str | None = None) -> None:
    """Send a frame to every socket of every given user, except the excluded socket."""
    await push_frames([(user_ids, frame, exclude_channel)])


async def push_frames(pushes: list[Push]) -> None:
    """Send frames, each to every socket of its users except its excluded socket, in order.

    The publishes are started side by side and in this order; the layer sends
    those of one moment together over one connection, in the order started,
    so each user's frames arrive in the order given.
    """
    layer = get_channel_layer()
    sends: list[Awaitable[None]] = []
    for user_ids, frame, exclude_channel in pushes:
        event = {"type": FRAME_EVENT, "frame": frame, "exclude": exclude_channel}
        sends.extend(layer.group_send(user_group(u), event) for u in dict.fromkeys(str(u) for u in user_ids))
    await asyncio.gather(*sends)
