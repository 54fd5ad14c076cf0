"""Which channels_redis layer should carry frames to users' sockets: core or pub/sub?

Everything the bridge pushes to a user goes through `group_send("user.<id>", ...)`
(messaging/realtime.py), and every socket of that user receives it from its
own channel. This benchmark models exactly that on the real Redis at REDIS_URL:
K=3 receiver channels in one group, all in one server process (one layer
instance, which for the core layer means one shared Redis key with one
capacity), each drained by a task that spends ~1 ms per frame, as a WebSocket
send would; a producer (a second layer instance, like the bridge process)
sends at a fixed rate for a few seconds, stamping each message with a sequence
number and its send time. A variant makes one socket slow (20 ms per frame).

For each layer and scenario it prints what was sent, what each receiver got,
the delivered ratio, how many were dropped, and the p50/p95/p99 latency from
group_send to receive(). The numbers decide between the layers: one bounds
memory by dropping, the other never drops but lets latency grow.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chat_project.settings")

from channels_redis.core import RedisChannelLayer  # noqa: E402
from channels_redis.pubsub import RedisPubSubChannelLayer  # noqa: E402

RECEIVERS = 3
DURATION_SECONDS = 5.0
RATES = (500, 2000)
FRAME_SECONDS = 0.001
SLOW_FRAME_SECONDS = 0.020
# Stragglers: stop waiting once nothing arrived for this long...
QUIET_SECONDS = 2.0
# ...or after this long, because an unbounded queue in front of a 20 ms
# consumer can take minutes to drain; what is still queued then is reported.
DRAIN_CAP_SECONDS = 12.0
# Own key prefix, so that flushing the benchmark's keys leaves anything else in Redis alone.
PREFIX = "bench-layer"
# Roughly the size of a real message.new frame.
FRAME = {"type": "message.new", "message": {"content": "x" * 200, "id": str(uuid.uuid4())}}


class OverCapacityCounter(logging.Handler):
    """Counts the core layer's only trace of a group_send it dropped: an INFO log line."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.events = 0
        self.channels = 0

    def emit(self, record: logging.LogRecord) -> None:
        if "over capacity" in record.msg:
            self.events += 1
            self.channels += int(record.args[0])  # type: ignore[index]


@dataclass
class Receiver:
    channel: str
    frame_seconds: float
    seqs: list[int] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)


@dataclass
class Result:
    layer: str
    scenario: str
    rate: int
    sent: int
    send_seconds: float
    drain_seconds: float
    capped: bool
    receivers: list[Receiver]
    queued_at_end: list[int]
    redis_drop_events: int = 0
    cpu_share: float = 0.0


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile (0 for no values)."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(p / 100 * len(ordered)) - 1))]


def redis_url() -> str:
    url = os.environ.get("REDIS_URL")
    if not url:
        raise SystemExit("REDIS_URL is not set: run through scripts/bench.sh, which starts Redis.")
    return url


def make_layer(kind: str) -> Any:
    """Create a layer with the class directly and its defaults (core: capacity 100 per channel)."""
    if kind == "core":
        return RedisChannelLayer(hosts=[redis_url()], prefix=PREFIX)
    return RedisPubSubChannelLayer(hosts=[redis_url()], prefix=PREFIX)


async def consume(layer: Any, receiver: Receiver) -> None:
    """Receive forever, like a consumer's dispatch loop, then 'send' the frame."""
    while True:
        message = await layer.receive(receiver.channel)
        receiver.latencies.append(time.monotonic() - message["sent_at"])
        receiver.seqs.append(message["seq"])
        # Sleeping yields to the loop, as awaiting a WebSocket write does.
        await asyncio.sleep(receiver.frame_seconds)


async def produce(layer: Any, group: str, rate: int) -> tuple[int, float]:
    """group_send at `rate` per second for DURATION_SECONDS; return (sent, seconds taken)."""
    start = time.monotonic()
    seq = 0
    # Bounded by time, not count: a layer whose group_send cannot keep up sends fewer.
    while time.monotonic() - start < DURATION_SECONDS:
        delay = start + seq / rate - time.monotonic()
        # Behind schedule: send at once (catch up) rather than lower the offered load.
        if delay > 0:
            await asyncio.sleep(delay)
        await layer.group_send(group, {"type": "chat.frame", "seq": seq, "sent_at": time.monotonic(), "frame": FRAME})
        seq += 1
    return seq, time.monotonic() - start


async def backlog(kind: str, layer: Any, channel: str) -> int:
    """Messages still waiting for `channel` (in process, and for core also in Redis)."""
    if kind == "pubsub":
        queue = layer._get_layer().channels.get(channel)
        return queue.qsize() if queue is not None else 0
    buffered = layer.receive_buffer.get(channel)
    local = buffered.qsize() if buffered is not None else 0
    # All channels of one core layer instance share one Redis key, so this
    # counts entries that may be meant for the other channels too.
    key = layer.prefix + layer.non_local_name(channel)
    remote = await layer.connection(layer.consistent_hash(channel)).zcard(key)
    return local + remote


async def run(kind: str, rate: int, slow: bool, counter: OverCapacityCounter) -> Result:
    sender, server = make_layer(kind), make_layer(kind)
    group = f"user.{uuid.uuid4().int % 10**9}"
    receivers = []
    for index in range(RECEIVERS):
        channel = await server.new_channel()
        await server.group_add(group, channel)
        frame_seconds = SLOW_FRAME_SECONDS if slow and index == 0 else FRAME_SECONDS
        receivers.append(Receiver(channel, frame_seconds))
    tasks = [asyncio.create_task(consume(server, r)) for r in receivers]
    # Let the pub/sub subscriptions settle before the first publish.
    await asyncio.sleep(0.2)

    events_before = counter.events
    # Producer, receivers and both layers share this one loop, so a loop near 100% CPU
    # means the figures show the client library's cost rather than Redis's.
    cpu_before, wall_before = time.process_time(), time.monotonic()
    sent, send_seconds = await produce(sender, group, rate)

    drain_start = last_change = time.monotonic()
    total = -1
    capped = False
    while True:
        now = time.monotonic()
        current = sum(len(r.seqs) for r in receivers)
        if current != total:
            total, last_change = current, now
        if now - last_change >= QUIET_SECONDS:
            break
        if now - drain_start >= DRAIN_CAP_SECONDS:
            capped = True
            break
        await asyncio.sleep(0.05)
    drain_seconds = time.monotonic() - drain_start
    cpu_share = (time.process_time() - cpu_before) / (time.monotonic() - wall_before)
    queued = [await backlog(kind, server, r.channel) for r in receivers]

    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    # flush deletes the benchmark's keys (core) and closes every connection.
    for layer in (sender, server):
        await layer.flush()

    return Result(
        layer=kind,
        scenario="slow consumer" if slow else "all fast",
        rate=rate,
        sent=sent,
        send_seconds=send_seconds,
        drain_seconds=drain_seconds,
        capped=capped,
        receivers=receivers,
        queued_at_end=queued,
        redis_drop_events=counter.events - events_before,
        cpu_share=cpu_share,
    )


def report(result: Result) -> dict[str, float]:
    """Print one run's figures; return the ones the conclusion compares."""
    unique = [len(set(r.seqs)) for r in result.receivers]
    duplicates = sum(len(r.seqs) - u for r, u in zip(result.receivers, unique, strict=True))
    expected = result.sent * len(result.receivers)
    delivered = sum(unique)
    queued = sum(result.queued_at_end) if result.capped else 0
    dropped = expected - delivered - queued
    latencies = [x for r in result.receivers for x in r.latencies]
    fast = [x for r in result.receivers if r.frame_seconds == FRAME_SECONDS for x in r.latencies]

    print(
        f"\n-- {result.layer:<6} {result.rate:>4} msg/s  {result.scenario}: sent {result.sent} "
        f"in {result.send_seconds:.2f}s (achieved {result.sent / result.send_seconds:.0f} msg/s), "
        f"drained {result.drain_seconds:.1f}s{' (CAPPED)' if result.capped else ''}, "
        f"process CPU {result.cpu_share:.0%} of one core"
    )
    for index, (receiver, got) in enumerate(zip(result.receivers, unique, strict=True)):
        lat = receiver.latencies
        print(
            f"   receiver {index} ({receiver.frame_seconds * 1000:.0f} ms/frame): received {got:>5}"
            f"  ratio {got / result.sent:6.1%}  latency p50 {percentile(lat, 50) * 1000:7.1f} ms"
            f"  p95 {percentile(lat, 95) * 1000:7.1f} ms  p99 {percentile(lat, 99) * 1000:7.1f} ms"
            + (f"  still queued {result.queued_at_end[index]}" if result.capped else "")
        )
    print(
        f"   all: delivered {delivered}/{expected} = {delivered / expected:.1%}, dropped {dropped}, "
        f"duplicates {duplicates}"
        + (f", still queued at cutoff {queued} (not lost, not yet delivered)" if result.capped else "")
        + f"; latency p50 {percentile(latencies, 50) * 1000:.1f} ms, p95 {percentile(latencies, 95) * 1000:.1f} ms,"
        f" p99 {percentile(latencies, 99) * 1000:.1f} ms"
    )
    if result.layer == "core":
        # Each event skipped the group's one Redis key, i.e. all receivers of this process at once.
        print(
            f"   core drops: {result.redis_drop_events} group_send calls hit the capacity in Redis "
            f"(≈{result.redis_drop_events * len(result.receivers)} deliveries), "
            f"the other {max(0, dropped - result.redis_drop_events * len(result.receivers))} were evicted "
            f"from the process's receive buffer (BoundedQueue drops the oldest)"
        )
    return {
        "ratio": delivered / expected,
        "dropped": dropped,
        "queued": queued,
        "fast_p99": percentile(fast, 99),
    }


async def main() -> None:
    counter = OverCapacityCounter()
    core_logger = logging.getLogger("channels_redis.core")
    core_logger.addHandler(counter)
    core_logger.setLevel(logging.INFO)
    # Counted, not printed: one line per dropped group_send would flood the output.
    core_logger.propagate = False

    print(
        f"{RECEIVERS} receivers in one group, {FRAME_SECONDS * 1000:.0f} ms per frame "
        f"(slow variant: one at {SLOW_FRAME_SECONDS * 1000:.0f} ms), {DURATION_SECONDS:.0f} s of group_send per run"
    )
    figures: dict[tuple[str, int, bool], dict[str, float]] = {}
    for rate in RATES:
        for slow in (False, True):
            for kind in ("core", "pubsub"):
                figures[kind, rate, slow] = report(await run(kind, rate, slow, counter))

    print(
        "\nNote: on a full channel the core layer's group_send does not raise ChannelFull (only send() does);"
        " its Lua script skips that channel and logs at INFO ('N of M channels over capacity'),"
        " and the receiving process's buffer silently drops the oldest frame when it holds `capacity`."
        " All process-local channels of one layer instance share one Redis key (specific.<client prefix>!),"
        " so the 100 slots are per server process, not per socket."
    )
    core = {key[1:]: f for key, f in figures.items() if key[0] == "core"}
    pubsub = {key[1:]: f for key, f in figures.items() if key[0] == "pubsub"}
    core_ratios = [f["ratio"] for f in core.values()]
    pubsub_dropped = sum(f["dropped"] for f in pubsub.values())
    pubsub_queued = max(f["queued"] for f in pubsub.values())
    pubsub_p99 = max(f["fast_p99"] for f in pubsub.values())
    if pubsub_dropped == 0 and min(core_ratios) < 1:
        verdict = (
            f"pub/sub lost nothing in any run while core delivered only {min(core_ratios):.1%} to "
            f"{max(core_ratios):.1%} (already {core[500, False]['ratio']:.1%} at 500 msg/s with fast sockets), "
            f"so pub/sub is the layer to keep; its price is an unbounded in-memory queue when a socket cannot keep "
            f"up (up to {pubsub_queued} frames still queued, fast-socket p99 {pubsub_p99 * 1000:.0f} ms at worst)."
        )
    else:
        verdict = (
            f"core delivered {min(core_ratios):.1%} to {max(core_ratios):.1%} and pub/sub dropped "
            f"{pubsub_dropped}; neither layer is clearly better on these numbers."
        )
    print(f"Conclusion: {verdict}")


if __name__ == "__main__":
    asyncio.run(main())
