"""A three-node Kafka cluster under faults: a partition leader killed, and a rolling restart, each mid-burst.

The cluster is started once for the module by scripts/kafka.sh
(KAFKA_BROKERS=3) on ports of its own, and one system (database, web,
bridge) runs on it for every scenario. Each scenario checks what every fault
scenario checks (nothing lost, nothing stored twice, live delivery proven
after recovery) and one thing more: for each partition of chat-messages whose
leadership moved, what was sent into it since the fault began reached every
receiver live again within RESUME_WITHIN_S of the move. The burst's
conversations cover every partition, so whichever node leads, its partitions
carry traffic; a throttle keeps that traffic going however long the fault takes.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
import zlib
from collections import Counter
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest

from kafka_bridge.operate.provisioning import topic_names
from messaging.events import CHAT_MESSAGES
from tests.support.client import conversation, register
from tests.support.cluster import NODES, Cluster, Moment, wait_leaders_moved
from tests.support.stack import ROOT, Stack, serving_stack

from .burst import Burst, Receiver, Sender, Throttle
from .conftest import UNLIMITED

pytestmark = [pytest.mark.integration, pytest.mark.faults, pytest.mark.cluster]

# The bound the production issue sets: after a partition's leadership moves to
# another broker, its conversations are live again within this many seconds.
RESUME_WITHIN_S = 5.0
# After the burst, fresh messages reach every receiver live within this long (as in test_faults).
LIVE_WITHIN_S = 20.0
TOPIC = CHAT_MESSAGES.name
PARTITIONS = 3
# The pace of a burst (sends a second, all senders together) and how far it
# goes on through a fault and after a leadership moved.
FULL_RATE = 50.0
SLOW_RATE = 25.0
THROUGH_FAULT = 100
AFTER_MOVE = 150


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    cluster = Cluster.for_tests()
    cluster.reset()
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="module")
def cluster_stack(cluster: Cluster) -> Iterator[Stack]:
    with serving_stack("cluster", KAFKA_BOOTSTRAP_SERVERS=cluster.bootstrap, **UNLIMITED) as stack:
        yield stack


def partition_of(conversation_id: str) -> int:
    """The partition the producers' default partitioner (librdkafka's consistent_random: CRC32 of the key) picks."""
    return zlib.crc32(conversation_id.encode()) % PARTITIONS


def prepare_burst(stack: Stack, throttle: Throttle) -> Burst:
    """A burst like Burst.prepare's, paced by `throttle`, with conversations enough that every partition has some."""
    burst = Burst(stack, stack.base)  # type: ignore[attr-defined]
    senders = [register(burst.base, f"sender{i}") for i in range(4)]
    receivers = [register(burst.base, f"receiver{i}") for i in range(2)]
    members = senders + receivers
    covered: set[int] = set()
    while len(covered) < PARTITIONS or len(burst.conversation_ids) < 3:
        assert len(burst.conversation_ids) < 30, "conversations keep landing in the same partitions"
        created = conversation(members[0], *members[1:], title=f"burst {len(burst.conversation_ids)}")["id"]
        burst.conversation_ids.append(created)
        covered.add(partition_of(created))
    burst.senders = [Sender(u, burst.conversation_ids, burst.per_sender, throttle=throttle) for u in senders]
    burst.receivers = [Receiver(u) for u in receivers]
    return burst


def created_at(message: dict[str, Any]) -> float:
    return datetime.fromisoformat(message["createdAt"]).timestamp()


def sent_messages(burst: Burst, placement: dict[str, int]) -> list[dict[str, Any]]:
    """Every message the burst sent (probes too), checked to lie in the partition the test expected."""
    sent = [m for s in burst.senders for m in s.acked] + burst.probes
    for m in sent:
        assert placement[m["id"]] == partition_of(m["conversationId"]), "the partitioner is not CRC32 of the key"
    return sent


def live_everywhere(burst: Burst, ids: set[str], not_before: float) -> float:
    """The moment the last receiver got its first of `ids` live, counting arrivals from `not_before` on."""
    arrivals = []
    for receiver in burst.receivers:
        live = zip(receiver.live, receiver.live_at, strict=True)
        first = min((t for m, t in live if m["id"] in ids and t >= not_before), default=None)
        assert first is not None, f"{receiver.user.username} got none of {len(ids)} messages live"
        arrivals.append(first)
    return max(arrivals)


def resumption(
    burst: Burst, placement: dict[str, int], fault: Moment, moved: dict[int, Moment], *, sent_since_move: bool = False
) -> dict[int, float]:
    """Seconds from each partition's leadership move until every receiver got live again what was sent into it.

    What was sent into it since the fault began: a record the leader did not
    have when it died can only come through the new one. With
    `sent_since_move`, only what was sent after the move counts: it waits
    behind what piled up while the partition had no leader.
    """
    sent = sent_messages(burst, placement)
    seconds = {}
    for partition, moment in moved.items():
        since = moment.wall if sent_since_move else fault.wall
        ids = {m["id"] for m in sent if placement[m["id"]] == partition and created_at(m) >= since}
        assert ids, f"no message was sent into partition {partition} after the fault"
        seconds[partition] = round(live_everywhere(burst, ids, moment.monotonic) - moment.monotonic, 2)
    return seconds


def duplicates_delivered(burst: Burst) -> int:
    return sum(r.live_repeats for r in burst.receivers)


def test_kafka_topics_replicates_across_the_cluster_and_reports_drift(cluster: Cluster, cluster_stack: Stack):
    admin = cluster.admin()
    metadata = admin.list_topics(timeout=10)
    assert sorted(metadata.brokers) == [1, 2, 3]
    for name in [*topic_names(), "__consumer_offsets"]:
        partitions = metadata.topics[name].partitions.values()
        assert all(sorted(p.replicas) == [1, 2, 3] and sorted(p.isrs) == [1, 2, 3] for p in partitions), name
    assert "3 broker(s): replication factor 3, min.insync.replicas 2" in cluster_stack.manage("kafka_topics")
    assert "all topics present and as configured" in cluster_stack.manage("kafka_topics")
    # The same topics against other settings: each difference is reported, nothing is changed.
    result = subprocess.run(
        [sys.executable, "manage.py", "kafka_topics"],
        cwd=ROOT,
        env={
            **cluster_stack.env(),
            "KAFKA_REPLICATION_FACTOR": "2",
            "KAFKA_MIN_INSYNC_REPLICAS": "1",
            "KAFKA_TOPIC_PARTITIONS": "4",
        },
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert "replication factor 2, min.insync.replicas 1" in result.stdout
    for drift in (
        "drift: chat-messages: 3 partitions, expected 4",
        "drift: chat-messages: replication [3], expected 2",
        "drift: chat-messages: min.insync.replicas=2, expected 1",
    ):
        assert drift in result.stdout, result.stdout
    assert len(cluster.leaders(TOPIC)) == 3


async def test_partition_leader_killed_mid_burst(cluster: Cluster, cluster_stack: Stack, report):
    # Traffic goes on through the kill, stops short until the leadership has
    # moved, then flows again to the end while the node comes back.
    throttle = Throttle(rate=FULL_RATE, allowed=300 + THROUGH_FAULT)
    burst = prepare_burst(cluster_stack, throttle)
    since = cluster.end_offsets(TOPIC)
    await burst.start_receivers()
    sending = asyncio.create_task(burst.send_all())
    await burst.wait_sent(300)
    leaders = cluster.leaders(TOPIC)
    victim = Counter(leaders.values()).most_common(1)[0][0]
    led = [p for p, node in leaders.items() if node == victim]
    killed = Moment.now()
    acked_at_kill = burst.sent()
    await asyncio.to_thread(cluster.kill, victim)  # SIGKILL: no controlled shutdown
    moved = await asyncio.to_thread(wait_leaders_moved, cluster, TOPIC, victim, led)
    throttle.allow(burst.total, rate=FULL_RATE)
    acked_while_leaderless = burst.sent() - acked_at_kill
    # With a node down the cluster still has three brokers: nothing drifted.
    topics = await asyncio.to_thread(cluster_stack.manage, "kafka_topics")
    assert "3 broker(s) (1 not answering): replication factor 3, min.insync.replicas 2" in topics, topics
    assert "all topics present and as configured" in topics, topics
    # Back while the burst goes on: it catches up from the others and rejoins every ISR.
    restarted = time.monotonic()
    await asyncio.gather(sending, asyncio.to_thread(cluster.start, victim))
    done = await burst.wait_delivered(live_within=LIVE_WITHIN_S)
    figures = burst.verify()
    back_in_sync = time.monotonic() - restarted + await asyncio.to_thread(cluster.wait_in_sync, victim)
    placement = await asyncio.to_thread(cluster.placement, TOPIC, since)
    resumed = resumption(burst, placement, killed, moved)
    report(
        {
            **figures,
            "duplicates delivered": duplicates_delivered(burst),
            "killed node": f"{victim} (led partitions {led})",
            "leader moved s after kill": round(max(m.monotonic for m in moved.values()) - killed.monotonic, 1),
            "acked while leaderless": acked_while_leaderless,
            "live resumed s after leader moved": resumed,
            "sent after the move, live in s": resumption(burst, placement, killed, moved, sent_since_move=True),
            "killed node back in sync s after its start": round(back_in_sync, 1),
            "delivered s after last ack": round(done, 1),
        }
    )
    assert max(resumed.values()) <= RESUME_WITHIN_S, f"live delivery resumed after {resumed} s (by partition)"


async def test_rolling_restart_mid_burst(cluster: Cluster, cluster_stack: Stack, report):
    # Each restart: traffic through the stop, and again from the moment its leaderships moved.
    throttle = Throttle(rate=FULL_RATE, allowed=100)
    burst = prepare_burst(cluster_stack, throttle)
    since = cluster.end_offsets(TOPIC)
    await burst.start_receivers()
    sending = asyncio.create_task(burst.send_all())
    await burst.wait_sent(100)
    moves: list[tuple[Moment, dict[int, Moment]]] = []
    restarts: list[str] = []
    remaining = set(range(1, NODES + 1))
    while remaining:
        # The node leading the most partitions next, so that restarts move leadership.
        leaders = cluster.leaders(TOPIC)
        node = max(sorted(remaining), key=lambda n: sum(leader == n for leader in leaders.values()))
        remaining.discard(node)
        led = [p for p, leader in leaders.items() if leader == node]
        throttle.allow(THROUGH_FAULT, rate=FULL_RATE)
        stopped = Moment.now()
        stopping = asyncio.create_task(asyncio.to_thread(cluster.stop, node))
        moved = await asyncio.to_thread(wait_leaders_moved, cluster, TOPIC, node, led)
        throttle.allow(AFTER_MOVE, rate=SLOW_RATE)
        await stopping
        restarted = time.monotonic()
        await asyncio.to_thread(cluster.start, node)
        in_sync = time.monotonic() - restarted + await asyncio.to_thread(cluster.wait_in_sync, node)
        moves.append((stopped, moved))
        restarts.append(f"node {node} (its partitions {sorted(moved)} moved, back in sync in {in_sync:.1f} s)")
    throttle.allow(burst.total, rate=FULL_RATE)
    await sending
    done = await burst.wait_delivered(live_within=LIVE_WITHIN_S)
    figures = burst.verify()
    placement = await asyncio.to_thread(cluster.placement, TOPIC, since)
    # Per restart: seconds by partition whose leadership it moved.
    resumed = [resumption(burst, placement, stopped, moved) for stopped, moved in moves]
    report(
        {
            **figures,
            "duplicates delivered": duplicates_delivered(burst),
            "restarts": "; ".join(restarts),
            "live resumed s after leader moved": resumed,
            "sent after the move, live in s": [
                resumption(burst, placement, stopped, moved, sent_since_move=True) for stopped, moved in moves
            ],
            "delivered s after last ack": round(done, 1),
        }
    )
    assert any(resumed), "no restart moved a leadership"
    slowest = max(s for by_partition in resumed for s in by_partition.values())
    assert slowest <= RESUME_WITHIN_S, f"live delivery resumed after {resumed} s (by restart and partition)"
