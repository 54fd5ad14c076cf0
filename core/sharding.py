"""Channel-layer groups that choose their Redis shard.

A channels_redis layer over several Redis servers puts each channel and
group on the shard that the consistent hash of its name picks. A group named
`<name>.shard<N>` lives on shard N instead (modulo the number of shards;
chat_project/channel_layer.py reads the name), so that a group every process
joins once per shard can spread its publishes over all of them.
"""

from __future__ import annotations

import re

PINNED = re.compile(r"\.shard(\d+)$")


def pinned_group(group: str, shard: int) -> str:
    """Name the part of `group` that lives on shard `shard`."""
    return f"{group}.shard{shard}"


def pinned_shard(name: str) -> int | None:
    """Return the shard a group name (or its pub/sub channel's name) pins, or None."""
    match = PINNED.search(name)
    return int(match.group(1)) if match else None
