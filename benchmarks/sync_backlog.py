"""How fast a user who was away catches up with `sync`.

A user offline for a week may come back to thousands of messages in many
conversations. This fills a backlog of 10,000 messages addressed to one user
(20 conversations of 500, written by the services in this process, with
their outbox records removed so that no live traffic competes), then runs
the client's resume loop over a real WebSocket through a real daphne:
`sync` (500 per batch), confirm the batch by watermark (contract 1.2: one
`message.received` with `conversationId` and `upToSeq` per conversation the
batch moved, at most one per conversation per 100 ms), and again while
`more` is true. It prints the total time, messages per second, the
per-batch round trip percentiles and any message that came twice, and
checks that a last `sync` is empty.
"""

from __future__ import annotations

import asyncio
import math
import os
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import django

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support.client import Socket, register  # noqa: E402
from tests.support.stack import Stack  # noqa: E402

CONVERSATIONS = 20
PER_CONVERSATION = 500
# The contract's "at most one confirmation per conversation per 100 ms".
CONFIRM_EVERY_SECONDS = 0.1


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(p / 100 * len(ordered)) - 1))]


def fill_backlog(reader_id: str, writer_id: str) -> None:
    """Write the backlog with the real services, then drop the outbox so nothing is relayed."""
    from django.contrib.auth import get_user_model

    from kafka_bridge.models import OutboxRecord
    from messaging import services

    users = get_user_model().objects
    writer, reader = users.get(pk=writer_id), users.get(pk=reader_id)
    # Groups (a third member makes each one new), so that every conversation is its own.
    third = users.create_user(username=f"third-{uuid.uuid4().hex[:8]}")
    for n in range(CONVERSATIONS):
        group, _ = services.conversation_create(creator=writer, participant_ids=[reader.pk, third.pk], title=f"g{n}")
        for i in range(PER_CONVERSATION):
            services.message_send(
                sender=writer, conversation_id=group.pk, content=f"backlog {n}/{i}", client_message_id=f"{n}-{i}"
            )
    OutboxRecord.objects.all().delete()


@dataclass
class Watermarks:
    """What the client holds, per conversation: every seq up to `held`, and the seqs above a gap."""

    held: dict[str, int] = field(default_factory=dict)
    above: dict[str, set[int]] = field(default_factory=dict)
    confirmed: dict[str, int] = field(default_factory=dict)
    confirmed_at: dict[str, float] = field(default_factory=dict)

    def hold(self, conversation: str, seq: int) -> None:
        """Count one message as held and move the conversation's watermark over what is now contiguous."""
        held, above = self.held.get(conversation, 0), self.above.setdefault(conversation, set())
        if seq > held:
            above.add(seq)
        self.raise_to(conversation, held)

    def raise_to(self, conversation: str, floor: int) -> None:
        """Move the watermark to at least `floor` (what the server says the client holds), then over the run."""
        held, above = max(self.held.get(conversation, 0), floor), self.above.setdefault(conversation, set())
        while held + 1 in above:
            held += 1
        self.held[conversation] = held
        self.above[conversation] = {seq for seq in above if seq > held}

    async def confirm(self, socket: Socket) -> None:
        """Send `message.received` for every conversation whose watermark moved."""
        for conversation, held in self.held.items():
            if held <= self.confirmed.get(conversation, 0):
                continue
            wait = self.confirmed_at.get(conversation, 0.0) + CONFIRM_EVERY_SECONDS - time.perf_counter()
            if wait > 0:
                await asyncio.sleep(wait)
            await socket.send({"type": "message.received", "conversationId": conversation, "upToSeq": held})
            self.confirmed[conversation], self.confirmed_at[conversation] = held, time.perf_counter()


async def resume(socket: Socket) -> tuple[int, int, list[float]]:
    """Run sync/confirm until `more` is false; return messages received, distinct ones and per-batch seconds."""
    total, batches, ids = 0, [], set()
    marks = Watermarks()
    while True:
        start = time.perf_counter()
        seen = len(socket.of_type("message.new"))
        done = await socket.request({"type": "sync"}, timeout=120)
        batch = socket.of_type("message.new")[seen : seen + done["count"]]
        for state in done.get("conversations") or []:
            marks.raise_to(state["conversationId"], state.get("deliveredSeq") or 0)
        for frame in batch:
            marks.hold(frame["message"]["conversationId"], frame["message"]["seq"])
            ids.add(frame["message"]["id"])
        await marks.confirm(socket)
        batches.append(time.perf_counter() - start)
        total += done["count"]
        if not done["more"]:
            return total, len(ids), batches


async def main() -> None:
    # This process writes the backlog into the stack's database with Django.
    server = urlsplit(os.environ["DATABASE_URL"])
    os.environ["DATABASE_URL"] = urlunsplit(server._replace(path="/chat_bench_sync"))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chat_project.settings")
    django.setup()
    stack = Stack.create("bench_sync")
    try:
        _web, base = stack.start_web()
        reader, writer = register(base, "reader"), register(base, "writer")
        started = time.perf_counter()
        await asyncio.to_thread(fill_backlog, reader.id, writer.id)
        print(
            f"backlog of {CONVERSATIONS * PER_CONVERSATION} messages written in {time.perf_counter() - started:.1f} s"
        )

        socket = await Socket.open(base, reader.token)
        started = time.perf_counter()
        total, distinct, batches = await resume(socket)
        elapsed = time.perf_counter() - started
        last = await socket.request({"type": "sync"})
        await socket.close()
        print(
            f"sync of {total} pending messages in {len(batches)} batches: {elapsed:.2f} s "
            f"({total / elapsed:.0f} messages/s)"
        )
        print(
            f"per batch (sync + 500 frames + confirm): p50 {percentile(batches, 50) * 1000:.0f} ms, "
            f"p95 {percentile(batches, 95) * 1000:.0f} ms, max {max(batches) * 1000:.0f} ms"
        )
        print(f"messages that came more than once: {total - distinct}")
        print(f"sync after confirming everything: count {last['count']}, more {last['more']}")
        assert distinct == CONVERSATIONS * PER_CONVERSATION and last["count"] == 0
    finally:
        stack.stop()


if __name__ == "__main__":
    asyncio.run(main())
