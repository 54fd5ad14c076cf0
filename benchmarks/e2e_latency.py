"""End-to-end latency and burst throughput of the real chat path.

A message goes WebSocket -> daphne -> PostgreSQL (message, receipts, outbox
in one transaction) -> outbox relay -> Kafka -> run_kafka_bridge -> Redis
channel layer -> daphne -> the recipient's WebSocket. Unit tests prove each
hop works; only this measures what the whole chain costs a user:

(a) one sender, one message at a time (the next goes after the ack and a
    random pause of up to 100 ms): latency from send to the sender's
    `message.ack` (the commit) and to the recipient's `message.new`;
(b) four senders bursting into one group conversation with ~10 sends in
    flight each, and a fifth member who only listens: acked messages per
    second, how long until the listener has all of them, the listener's
    latency, and whether anything was lost or duplicated on the way.

Both split the time after the commit into hops, to show where it goes:
createdAt (stamped in the transaction) -> the record's Kafka timestamp (the
outbox relay), and in (b) -> the moment the bridge's publish to the
listener's group is seen on Redis (the bridge) -> the listener's socket
(daphne). Timestamps of different processes are compared on one machine's
wall clock.

It starts its own daphne and bridge with the tests' harness on a database of
its own (chat_bench), against the services scripts/bench.sh started; the
per-connection send rate limit is lifted so that it measures the system, not
the limiter.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import sys
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chat_project.settings")

import django  # noqa: E402

# The harness reads topic and loop definitions from the project, which need settings.
django.setup()

import redis.asyncio as aioredis  # noqa: E402
from channels_redis.pubsub import RedisPubSubChannelLayer  # noqa: E402
from confluent_kafka import Consumer, TopicPartition  # noqa: E402

from benchmarks.report import percentile  # noqa: E402
from messaging.events import CHAT_MESSAGES  # noqa: E402
from messaging.realtime import WEB_PROCESSES  # noqa: E402
from tests.support.client import Socket, User, conversation, register  # noqa: E402
from tests.support.stack import Stack, require_env  # noqa: E402

SEQUENTIAL_MESSAGES = 300
WARMUP_MESSAGES = 10
PAUSE_MAX_SECONDS = 0.1
SENDERS = 4
PER_SENDER = 250
IN_FLIGHT = 10
# How long the listener may go without a new frame before the burst is declared over.
QUIET_SECONDS = 10.0
ACK_TIMEOUT_SECONDS = 30.0


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def summary(values: list[float]) -> str:
    return (
        f"p50 {ms(percentile(values, 50))}, p95 {ms(percentile(values, 95))}, "
        f"p99 {ms(percentile(values, 99))}, max {ms(max(values, default=0.0))} (n={len(values)})"
    )


@dataclass
class TimedSocket(Socket):
    """The harness's socket, plus the arrival time of every frame and futures to await them.

    The harness keeps frames for tests to search; a benchmark needs the moment
    each frame arrived, taken in the reader before anything else runs.
    """

    acks: dict[str, asyncio.Future] = field(default_factory=dict)
    # clientMessageId -> arrival times of message.new frames carrying it (more than one is a duplicate).
    new_at: dict[str, list[float]] = field(default_factory=dict)
    new_ids: list[str] = field(default_factory=list)
    # Wall-clock arrival of the first copy, to line up with database and Kafka timestamps.
    new_wall: dict[str, float] = field(default_factory=dict)
    new_waiters: dict[str, asyncio.Future] = field(default_factory=dict)

    async def _read(self) -> None:
        try:
            async for raw in self.conn:
                now = time.perf_counter()
                frame = json.loads(raw)
                self._dispatch(frame, now)
        except Exception:
            pass
        finally:
            self.closed_code = self.conn.close_code
            for future in [*self.acks.values(), *self.new_waiters.values()]:
                if not future.done():
                    future.set_exception(ConnectionError(f"socket closed ({self.closed_code})"))

    def _dispatch(self, frame: dict[str, Any], now: float) -> None:
        kind = frame.get("type")
        if kind == "message.new":
            message = frame["message"]
            self.new_at.setdefault(message["clientMessageId"], []).append(now)
            self.new_wall.setdefault(message["clientMessageId"], time.time())
            self.new_ids.append(message["id"])
            waiter = self.new_waiters.pop(message["clientMessageId"], None)
            if waiter is not None and not waiter.done():
                waiter.set_result(now)
        elif kind in ("message.ack", "error"):
            future = self.acks.pop(str(frame.get("requestId")), None)
            if future is not None and not future.done():
                future.set_result((now, frame))

    async def send_timed(self, conversation_id: str, client_message_id: str) -> tuple[float, asyncio.Future]:
        """Send message.send; return when it left and a future of (ack time, reply)."""
        request_id = uuid.uuid4().hex
        future = asyncio.get_running_loop().create_future()
        self.acks[request_id] = future
        frame = {
            "type": "message.send",
            "requestId": request_id,
            "conversationId": conversation_id,
            "content": f"bench {client_message_id}",
            "clientMessageId": client_message_id,
        }
        sent_at = time.perf_counter()
        await self.send(frame)
        return sent_at, future

    def expect_new(self, client_message_id: str) -> asyncio.Future:
        """A future of the arrival time of the message.new carrying this clientMessageId."""
        future = asyncio.get_running_loop().create_future()
        if client_message_id in self.new_at:
            future.set_result(self.new_at[client_message_id][0])
        else:
            self.new_waiters[client_message_id] = future
        return future


def kafka_timeline(conversation_id: str) -> dict[str, tuple[float, float]]:
    """Read chat-messages back: clientMessageId -> (createdAt, the record's Kafka timestamp), in epoch seconds.

    createdAt is stamped inside the sending transaction and the record's
    CreateTime when the outbox relay produced it, so together with the
    arrival time they split the latency into the relay's part and the
    bridge's (Kafka poll, channel layer, daphne) part.
    """
    topic = CHAT_MESSAGES.name
    consumer = Consumer(
        {
            "bootstrap.servers": require_env("KAFKA_BOOTSTRAP_SERVERS"),
            "group.id": f"bench-reader-{uuid.uuid4().hex}",
            "enable.auto.commit": False,
        }
    )
    timeline: dict[str, tuple[float, float]] = {}
    try:
        ends: dict[int, int] = {}
        start: list[TopicPartition] = []
        for partition in consumer.list_topics(topic, timeout=10).topics[topic].partitions:
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)
            if high > low:
                ends[partition] = high
                start.append(TopicPartition(topic, partition, low))
        consumer.assign(start)
        deadline = time.monotonic() + 30
        while ends and time.monotonic() < deadline:
            for msg in consumer.consume(500, 1.0):
                if msg.error():
                    continue
                if msg.offset() + 1 >= ends.get(msg.partition(), 0):
                    ends.pop(msg.partition(), None)
                value = json.loads(msg.value())
                if value.get("conversationId") == conversation_id:
                    created = datetime.fromisoformat(value["createdAt"].replace("Z", "+00:00")).timestamp()
                    timeline[value["clientMessageId"]] = (created, msg.timestamp()[1] / 1000)
    finally:
        consumer.close()
    return timeline


class GroupTap:
    """Listens on Redis to what the bridge publishes to the web processes for one user, with the time it was seen.

    The pub/sub layer publishes a group_send on `<prefix>__group__<group>`; a
    subscriber of our own tells the bridge's share of the delay from daphne's.
    """

    def __init__(self, user_id: str) -> None:
        self.user_id = user_id
        self.pattern = f"*__group__{WEB_PROCESSES}*"
        self.seen: dict[str, float] = {}
        self._redis = aioredis.from_url(require_env("REDIS_URL"))
        self._pubsub = self._redis.pubsub()
        # Only for its deserialize(): the same msgpack format the project's layer uses.
        self._codec = RedisPubSubChannelLayer()
        self._task: asyncio.Task | None = None

    async def start(self) -> None:
        await self._pubsub.psubscribe(self.pattern)
        self._task = asyncio.create_task(self._listen())

    async def _listen(self) -> None:
        async for item in self._pubsub.listen():
            if item["type"] != "pmessage":
                continue
            now = time.time()
            for user_ids, text, _exclude in self._codec.deserialize(item["data"]).get("pushes", []):
                frame = json.loads(text)
                if self.user_id in user_ids and frame.get("type") == "message.new":
                    self.seen.setdefault(frame["message"]["clientMessageId"], now)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await self._pubsub.aclose()
        await self._redis.aclose()


def print_breakdown(
    conversation_id: str, socket: TimedSocket, who: str, tap: GroupTap | None = None, prefix: str = ""
) -> None:
    """Print where the time after the commit went, for the measured messages (clientMessageId `prefix`)."""
    timeline = {c: t for c, t in kafka_timeline(conversation_id).items() if c.startswith(prefix)}
    relay = [kafka - created for created, kafka in timeline.values()]
    print(f"   createdAt -> Kafka record (outbox relay):                 {summary(relay)}")
    if tap is None:
        bridge = [socket.new_wall[c] - kafka for c, (_, kafka) in timeline.items() if c in socket.new_wall]
        print(f"   Kafka record -> {who}'s message.new (bridge, layer, daphne): {summary(bridge)}")
        return
    bridge = [tap.seen[c] - kafka for c, (_, kafka) in timeline.items() if c in tap.seen]
    daphne = [socket.new_wall[c] - tap.seen[c] for c in tap.seen if c in socket.new_wall]
    print(f"   Kafka record -> published to {who}'s group (bridge):       {summary(bridge)}")
    print(f"   published -> {who}'s message.new (daphne, WebSocket):     {summary(daphne)}")


async def open_socket(user: User) -> TimedSocket:
    return await TimedSocket.open(user.base, user.token)  # type: ignore[return-value]


async def sequential(base: str) -> None:
    """(a) Alice sends one message at a time to Bob; time the ack and Bob's message.new."""
    alice, bob = register(base, "alice"), register(base, "bob")
    direct = conversation(alice, bob)
    a, b = await open_socket(alice), await open_socket(bob)
    try:
        for index in range(WARMUP_MESSAGES):
            client_id = f"warm-{index}"
            received = b.expect_new(client_id)
            sent_at, acked = await a.send_timed(direct["id"], client_id)
            # The first message waits for the bridge's consumer group to get its partitions.
            ack_at, _reply = await asyncio.wait_for(acked, 60.0)
            received_at = await asyncio.wait_for(received, 60.0)
            if index == 0:
                print(f"   first (cold) message: ack {ms(ack_at - sent_at)}, received {ms(received_at - sent_at)}")

        to_ack: list[float] = []
        sends: list[tuple[float, asyncio.Future]] = []
        for index in range(SEQUENTIAL_MESSAGES):
            client_id = f"seq-{index}"
            received = b.expect_new(client_id)
            sent_at, acked = await a.send_timed(direct["id"], client_id)
            ack_at, reply = await asyncio.wait_for(acked, ACK_TIMEOUT_SECONDS)
            if reply["type"] != "message.ack":
                raise RuntimeError(f"message {index} not acked: {reply}")
            to_ack.append(ack_at - sent_at)
            sends.append((sent_at, received))
            # Waiting for Bob before the next send would start every send just after the
            # bridge began a poll, i.e. always measure its worst case; a random pause lands
            # sends anywhere in the cycle, as people's messages do.
            await asyncio.sleep(random.uniform(0, PAUSE_MAX_SECONDS))
        _done, late = await asyncio.wait([f for _, f in sends], timeout=ACK_TIMEOUT_SECONDS)
        to_receive = [f.result() - sent for sent, f in sends if f.done() and not f.exception()]

        print(f"   send -> ack (committed):        {summary(to_ack)}")
        print(f"   send -> bob's message.new:      {summary(to_receive)}")
        after_commit = percentile(to_receive, 50) - percentile(to_ack, 50)
        print(f"   difference of p50s, i.e. outbox -> Kafka -> bridge -> layer: {ms(after_commit)}")
        print_breakdown(direct["id"], b, "bob", prefix="seq-")
        await asyncio.sleep(0.5)
        total = WARMUP_MESSAGES + SEQUENTIAL_MESSAGES
        duplicates = sum(len(times) - 1 for times in b.new_at.values())
        print(
            f"   bob's message.new frames: {len(b.new_ids)} for {total} sent ({duplicates} duplicates, "
            f"{len(late)} measured messages never arrived)"
        )
    finally:
        await a.close()
        await b.close()


async def burst_sender(
    socket: TimedSocket, conversation_id: str, prefix: str, sent_at: dict[str, float], ack_at: dict[str, float]
) -> Counter:
    """Send PER_SENDER messages keeping IN_FLIGHT unacknowledged; return reply types counted."""
    window = asyncio.Semaphore(IN_FLIGHT)
    replies: Counter = Counter()

    async def settle(client_id: str, future: asyncio.Future) -> None:
        try:
            when, reply = await asyncio.wait_for(future, ACK_TIMEOUT_SECONDS)
            replies[reply["type"] if reply["type"] == "message.ack" else reply.get("code", "error")] += 1
            ack_at[client_id] = when
        except (TimeoutError, ConnectionError):
            replies["no reply"] += 1
        finally:
            window.release()

    pending = []
    for index in range(PER_SENDER):
        await window.acquire()
        client_id = f"{prefix}-{index}"
        sent_at[client_id], future = await socket.send_timed(conversation_id, client_id)
        pending.append(asyncio.create_task(settle(client_id, future)))
    await asyncio.gather(*pending)
    return replies


async def burst(base: str, stack: Stack) -> None:
    """(b) Four senders burst into one group; a fifth member listens."""
    senders = [register(base, f"sender{i}") for i in range(SENDERS)]
    listener = register(base, "listener")
    group = conversation(senders[0], *senders[1:], listener, title="bench burst")
    sockets = [await open_socket(u) for u in senders]
    ear = await open_socket(listener)
    tap = GroupTap(listener.id)
    await tap.start()
    total = SENDERS * PER_SENDER
    sent_at: dict[str, float] = {}
    ack_at: dict[str, float] = {}
    try:
        start = time.perf_counter()
        replies = await asyncio.gather(
            *(burst_sender(s, group["id"], f"b{i}", sent_at, ack_at) for i, s in enumerate(sockets))
        )
        acked_seconds = time.perf_counter() - start

        # Wait for stragglers: until the listener has everything or has heard nothing for a while.
        last_count, last_change = -1, time.perf_counter()
        while True:
            count = len(ear.new_ids)
            if count != last_count:
                last_count, last_change = count, time.perf_counter()
            if count >= total and time.perf_counter() - last_change > 1.0:
                break  # a second of quiet after the last one, to catch duplicates
            if time.perf_counter() - last_change > QUIET_SECONDS:
                break
            await asyncio.sleep(0.05)

        counts = sum(replies, Counter())
        acked = counts["message.ack"]
        print(f"   replies to {total} sends: {dict(counts)}")
        print(
            f"   acked throughput: {acked} in {acked_seconds:.2f} s = {acked / acked_seconds:.0f} msg/s "
            f"({SENDERS} senders x {IN_FLIGHT} in flight)"
        )
        arrivals = [t for times in ear.new_at.values() for t in times]
        if arrivals:
            print(
                f"   listener had {len(ear.new_at)}/{total} after {max(arrivals) - start:.2f} s from the first send "
                f"(first frame after {min(arrivals) - start:.2f} s)"
            )
        latencies = [ear.new_at[c][0] - sent_at[c] for c in sent_at if c in ear.new_at]
        print(f"   listener latency send -> message.new: {summary(latencies)}")
        ack_latencies = [ack_at[c] - sent_at[c] for c in ack_at]
        print(f"   sender latency send -> ack: {summary(ack_latencies)}")
        print_breakdown(group["id"], ear, "listener", tap)
        # Whether the delay builds up during the burst or is constant: by tenth of the sends.
        ordered = sorted((c for c in sent_at if c in ear.new_at), key=lambda c: sent_at[c])
        tenths = [ordered[i * len(ordered) // 10 : (i + 1) * len(ordered) // 10] for i in range(10)]
        medians = [percentile([ear.new_at[c][0] - sent_at[c] for c in part], 50) for part in tenths if part]
        print(f"   listener p50 latency by tenth of the burst (ms): {[round(m * 1000) for m in medians]}")

        missing = sorted(set(sent_at) - set(ear.new_at))
        duplicates = sum(len(times) - 1 for times in ear.new_at.values())
        unexpected = sorted(set(ear.new_at) - set(sent_at))
        print(
            f"   listener: unique {len(ear.new_at)}, missing {len(missing)}, duplicates {duplicates}, "
            f"unexpected {len(unexpected)}" + (f" (first missing: {missing[:5]})" if missing else "")
        )
        # Each sender is a member too and should see everyone else's messages once.
        for index, socket in enumerate(sockets):
            own = f"b{index}-"
            others = [c for c in socket.new_at if not c.startswith(own)]
            echoes = [c for c in socket.new_at if c.startswith(own)]
            dup = sum(len(socket.new_at[c]) - 1 for c in others)
            print(
                f"   sender {index}: others' messages {len(others)}/{total - PER_SENDER}, duplicates {dup}, "
                f"own echoed back {len(echoes)}"
            )
        rows = stack.query(
            "SELECT count(*), count(DISTINCT seq), min(seq), max(seq) FROM messaging_message"
            " WHERE conversation_id = %s",
            group["id"],
        )
        stored, distinct, low, high = rows[0]
        print(f"   stored: {stored} messages, {distinct} distinct seq, seq {low}..{high}")
        print(f"   outbox left: {stack.query('SELECT count(*) FROM kafka_bridge_outboxrecord')[0][0]} records")
    finally:
        await tap.stop()
        for socket in [*sockets, ear]:
            await socket.close()


async def main(stack: Stack, base: str) -> None:
    print(
        f"(a) {SEQUENTIAL_MESSAGES} messages one at a time, alice -> bob, next after the ack and a random "
        f"0-{PAUSE_MAX_SECONDS * 1000:.0f} ms pause (after {WARMUP_MESSAGES} warm-up)"
    )
    await sequential(base)
    print(f"(b) burst: {SENDERS} senders x {PER_SENDER} messages into one group, {IN_FLIGHT} in flight each")
    await burst(base, stack)


if __name__ == "__main__":
    bench_stack = Stack.create("bench", CHAT_SEND_BURST="100000", CHAT_SEND_RATE_PER_SECOND="100000")
    try:
        bench_stack.start_bridge()
        _web, base_url = bench_stack.start_web()
        asyncio.run(main(bench_stack, base_url))
    finally:
        bench_stack.stop()
