"""Two round trips a user waits on, one at a time, on an idle system.

(a) send -> the recipient's `message.new` (the whole chat path);
(b) the recipient's `message.received` (contract 1.2: `conversationId` and
    `upToSeq`, the message's seq) -> the sender's `message.status`
    DELIVERED with `upToSeq` >= that seq (daphne -> PostgreSQL -> outbox ->
    Kafka -> bridge -> the sender's socket).

Figures only, for the record: machines are noisy, so nothing here is a limit.
It starts its own daphne and bridge with the tests' harness (send limit lifted) on a database of
its own (chat_round_trips), against the services that
`source scripts/test-services.sh` started.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chat_project.settings")

import django  # noqa: E402

# The harness reads topic and loop definitions from the project, which need settings.
django.setup()

from benchmarks.report import percentile  # noqa: E402
from tests.support.client import conversation, register  # noqa: E402
from tests.support.stack import Stack  # noqa: E402

SAMPLES = 50


def summary(label: str, seconds: list[float]) -> str:
    return (
        f"{label}: p50 {percentile(seconds, 50) * 1000:.1f} ms, p95 {percentile(seconds, 95) * 1000:.1f} ms, "
        f"max {max(seconds) * 1000:.1f} ms (n={len(seconds)})"
    )


def covers(frame: dict[str, Any], conversation_id: str, seq: int) -> bool:
    """Whether a frame tells the sender that the message with `seq` was delivered."""
    return (
        frame.get("type") == "message.status"
        and frame.get("conversationId") == conversation_id
        and frame.get("status") in ("DELIVERED", "READ")
        and isinstance(frame.get("upToSeq"), int)
        and frame["upToSeq"] >= seq
    )


async def main(base: str) -> None:
    alice, bob = register(base, "alice"), register(base, "bob")
    direct = conversation(alice, bob)
    a, b = await alice.ws(), await bob.ws()
    delivered, confirmed = [], []
    try:
        for i in range(SAMPLES):
            start = time.perf_counter()
            ack = await a.send_message(direct["id"], f"ping {i}")
            mid, seq = ack["message"]["id"], ack["message"]["seq"]
            await b.wait_for(lambda f, mid=mid: f.get("type") == "message.new" and f["message"]["id"] == mid)
            delivered.append(time.perf_counter() - start)
            start = time.perf_counter()
            await b.send({"type": "message.received", "conversationId": direct["id"], "upToSeq": seq})
            await a.wait_for(lambda f, seq=seq: covers(f, direct["id"], seq))
            confirmed.append(time.perf_counter() - start)
    finally:
        await a.close()
        await b.close()
    print(summary("send -> recipient's message.new", delivered))
    print(summary("message.received -> sender's message.status", confirmed))


if __name__ == "__main__":
    stack = Stack.create("round_trips", CHAT_SEND_BURST="100000", CHAT_SEND_RATE_PER_SECOND="100000")
    try:
        stack.start_bridge()
        _web, base_url = stack.start_web()
        asyncio.run(main(base_url))
    finally:
        stack.stop()
