"""What each socket was sent, so that a message is written to a socket once.

A message can come to a web process more than once: the bridge handles a
record again (a commit lost with a crash), an outbox record reaches Kafka
twice (its process died after the broker took it), or redelivery has sent
from the database what the bridge then brings too (during a broker outage
redelivery serves the sockets that wait; the records follow once the broker
is back). Each socket keeps, per conversation, the seqs it was sent, as
ranges (a socket that follows a conversation live has one), and a
`message.new` it already got is not written to it again. A seq names one
message of a conversation for good (PROTOCOL.md §2), so nothing else is
ever held back; and forgetting old ranges, to bound memory, can only let a
repeat through. `sync` answers in full whatever the socket got, and its
messages count as sent too.

A sender's own messages come in its acks, between others' that may still
be on their way (in a broker outage, until redelivery brings them): each
is a range of its own until the gaps fill. The client's confirmation
(`message.received` up to N: it holds every message up to N) joins them,
up to the highest seq the socket was sent, so that a confirmation past
what was sent (clamped by the server) holds nothing back that never came.
"""

from __future__ import annotations

import bisect
from typing import Any

# Ranges kept per conversation; past it the lowest go. A sender at the send rate limit (10 a second)
# makes fewer between two redelivery rounds of a broker outage, and its confirmations join them.
MAX_RANGES = 256


def seq_key(frame: dict[str, Any]) -> tuple[str, int] | None:
    """Return the (conversation, seq) a frame delivers, for a `message.new`; None for other frames."""
    if frame.get("type") != "message.new":
        return None
    message = frame["message"]
    return str(message["conversationId"]), int(message["seq"])


class SentSeqs:
    """The seqs of each conversation one socket was sent, as sorted, disjoint, non-adjacent [low, high] ranges."""

    def __init__(self) -> None:
        self._ranges: dict[str, list[list[int]]] = {}

    def first(self, conversation_id: str, seq: int) -> bool:
        """Count this message as sent to the socket; return False when it was sent already."""
        ranges = self._ranges.setdefault(conversation_id, [])
        # The first range that starts above seq; the one before it may hold seq.
        at = bisect.bisect_right(ranges, seq, key=lambda r: r[0])
        before = ranges[at - 1] if at else None
        if before is not None and before[1] >= seq:
            return False
        after = ranges[at] if at < len(ranges) else None
        if before is not None and before[1] == seq - 1:
            if after is not None and after[0] == seq + 1:  # fills the hole between two ranges
                before[1] = after[1]
                del ranges[at]
            else:
                before[1] = seq
        elif after is not None and after[0] == seq + 1:
            after[0] = seq
        else:
            ranges.insert(at, [seq, seq])
            if len(ranges) > MAX_RANGES:
                del ranges[0]
        return True

    def confirmed(self, conversation_id: str, up_to_seq: int) -> None:
        """The client holds every message up to this seq: count them as sent, up to the highest it was sent."""
        ranges = self._ranges.get(conversation_id)
        if not ranges:
            return
        top = min(up_to_seq, ranges[-1][1])
        # The ranges that start at or below top + 1 join the run 1..top.
        at = bisect.bisect_right(ranges, top + 1, key=lambda r: r[0])
        high = max(top, ranges[at - 1][1]) if at else top
        ranges[:at] = [[1, high]]

    def ranges(self, conversation_id: str) -> list[tuple[int, int]]:
        """Return the ranges of seqs sent of one conversation (for tests and debugging)."""
        return [(low, high) for low, high in self._ranges.get(conversation_id, [])]
