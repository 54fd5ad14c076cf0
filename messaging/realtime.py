"""Pushing frames to users' sockets through the channel layer.

Every socket joins the group of its user; everything addressed to a user is
sent to that group. Group names come from `user_group` and nowhere else.
The channel layer is a fast path, not a store: a frame that never reaches a
socket is recovered by the client's `sync`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

from channels.layers import get_channel_layer

FRAME_EVENT = "chat.frame"


def user_group(user_id: int | str) -> str:
    """Return the channel-layer group of one user's sockets."""
    return f"user.{user_id}"


async def push_frame(user_ids: Iterable[int | str], frame: dict[str, Any], exclude_channel: str | None = None) -> None:
    """Send a frame to every socket of every given user, except the excluded socket."""
    layer = get_channel_layer()
    event = {"type": FRAME_EVENT, "frame": frame, "exclude": exclude_channel}
    # Published side by side: the layer sends them over one connection in this order,
    # so each user's frames still arrive in the order of the calls.
    await asyncio.gather(*(layer.group_send(user_group(u), event) for u in dict.fromkeys(str(u) for u in user_ids)))
