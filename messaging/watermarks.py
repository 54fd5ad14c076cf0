"""Delivery and read state as watermarks: pure functions, no database (PROTOCOL.md §6).

Each participant has, per conversation, `delivered` (its client holds every
message up to it) and `read` (it has read everything others sent up to it),
with read <= delivered. A message's status, the sender's view, depends only
on the other participants' watermarks: READ once every other one has read
it, DELIVERED once every other one holds it. So the smallest watermark of a
sender's fellow participants (its "aggregate") says what all of its
messages up to there are.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from .models import MessageStatus

DELIVERED = MessageStatus.DELIVERED.value
READ = MessageStatus.READ.value
SENT = MessageStatus.SENT.value


@dataclass(frozen=True, slots=True)
class Marks:
    """One participant's two watermarks."""

    delivered: int
    read: int

    def of(self, status: str) -> int:
        """Return the watermark of a status (DELIVERED or READ)."""
        return self.read if status == READ else self.delivered


def advanced(marks: Marks, *, delivered: int, read: int, last_seq: int) -> Marks:
    """Return the watermarks after a confirmation: each only forward, at most last_seq, read <= delivered."""
    new_read = max(marks.read, min(read, last_seq))
    return Marks(delivered=max(marks.delivered, min(delivered, last_seq), new_read), read=new_read)


@dataclass(frozen=True, slots=True)
class Floor:
    """The smallest watermark of one status in a conversation, and who alone holds it.

    A sender's aggregate is the smallest watermark among its fellow
    participants: the second smallest for the one participant at the
    bottom, the smallest for everyone else. Everything the sender sent up to
    it has that status for everyone.
    """

    lowest: int
    # The one participant at `lowest`; None when several share it.
    lowest_user: int | None
    second: int

    def of(self, sender_id: int) -> int:
        """Return the sender's aggregate."""
        return self.second if sender_id == self.lowest_user else self.lowest


def floors(marks: Mapping[int, Marks], status: str) -> Floor:
    """Return the floor of one status over the participants' watermarks."""
    ranked = sorted((m.of(status), user_id) for user_id, m in marks.items())
    if not ranked:
        return Floor(lowest=0, lowest_user=None, second=0)
    (lowest, user_id), rest = ranked[0], ranked[1:]
    second = rest[0][0] if rest else lowest  # alone in the conversation: nothing is owed to anyone else
    return Floor(lowest=lowest, lowest_user=user_id if second > lowest or not rest else None, second=second)


@dataclass(frozen=True, slots=True)
class Statuses:
    """The statuses of a conversation's messages, from its participants' watermarks."""

    read: Floor
    delivered: Floor

    @classmethod
    def of_marks(cls, marks: Mapping[int, Marks]) -> Statuses:
        """Work out the floors of a conversation's watermarks once, for any number of its messages."""
        return cls(read=floors(marks, READ), delivered=floors(marks, DELIVERED))

    def status(self, sender_id: int, seq: int) -> str:
        """Return a message's status: READ, DELIVERED or SENT."""
        if self.read.of(sender_id) >= seq:
            return READ
        if self.delivered.of(sender_id) >= seq:
            return DELIVERED
        return SENT


def contiguous_run(start: int, held: set[int], messages: Iterable[tuple[int, int]], user_id: int) -> int:
    """Return how far a watermark at `start` moves over messages the client holds, without passing a gap.

    `messages` are (seq, sender id) of the conversation above `start`, in seq
    order; a message counts as held when its seq is in `held` (confirmed by
    id) or the user sent it (its client has it from the ack). The first
    message not held ends the run: what lies above it comes again by sync.
    """
    end = start
    for seq, sender_id in messages:
        if seq != end + 1 or (seq not in held and sender_id != user_id):
            break
        end = seq
    return end
