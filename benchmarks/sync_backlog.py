"""How fast a user who was away catches up with `sync`.

A user offline for a week may come back to thousands of messages in many
conversations. This fills a backlog of 10,000 messages addressed to one user
(20 conversations of 500, written by the services in this process, with
their outbox records removed so that no live traffic competes), then runs
the client's resume loop over a real WebSocket through a real daphne:
`sync` (500 per batch), confirm the batch with `message.received`, and again
while `more` is true. It prints the total time, messages per second, the
per-batch round trip percentiles, and checks that a last `sync` is empty.
"""

from __future__ import annotations

import asyncio
import math
import os
import sys
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import django

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support.client import Socket, register  # noqa: E402
from tests.support.stack import Stack  # noqa: E402

CONVERSATIONS = 20
PER_CONVERSATION = 500


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


async def resume(socket: Socket) -> tuple[int, list[float]]:
    """Run sync/confirm until `more` is false; return messages received and per-batch seconds."""
    total, batches = 0, []
    while True:
        start = time.perf_counter()
        seen = len(socket.of_type("message.new"))
        done = await socket.request({"type": "sync"}, timeout=120)
        batch = socket.of_type("message.new")[seen : seen + done["count"]]
        await socket.send({"type": "message.received", "messageIds": [f["message"]["id"] for f in batch]})
        batches.append(time.perf_counter() - start)
        total += done["count"]
        if not done["more"]:
            return total, batches


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
        total, batches = await resume(socket)
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
        print(f"sync after confirming everything: count {last['count']}, more {last['more']}")
        assert total == CONVERSATIONS * PER_CONVERSATION and last["count"] == 0
    finally:
        stack.stop()


if __name__ == "__main__":
    asyncio.run(main())
