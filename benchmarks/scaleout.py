"""`make bench ONLY=scaleout`: the chat scaled out on one box, beside the single node, and what each role costs.

Two targets, driven by the same load client (benchmarks/load.py) at the same
points, in random order at each point:

- single node: one Kafka broker (the bench's, its topics at the default
  partitions), one bridge, WEB_PROCESSES daphne processes on one port, one
  Redis, as `make run` starts them;
- scale-out: SCALE_BROKERS Kafka nodes of its own (scripts/kafka.sh
  KAFKA_BROKERS; replicas as topic provisioning decides for that size),
  SCALE_PARTITIONS partitions, SCALE_BRIDGES bridges, SCALE_WEB web
  processes each on a port of its own, and the channel layer sharded over
  SCALE_REDIS Redis servers of its own (REDIS_URL with several URLs). A
  sender's socket is never on the web process of its receivers; the last
  web process, the bystander, holds one socket of a user in no
  conversation, so its CPU is what every web process pays for the frames
  of users it does not hold (each one gets every published batch;
  messaging/realtime.py).

Both use the one PostgreSQL (a database each). Points: direct pairs at
DIRECT_RATES, and the fan-out group of the suite (FANOUT_MEMBERS members,
FANOUT_SENDERS senders, FANOUT_RATE msg/s). Lost messages are counted as in
the suite (acked, then neither received live nor by the final sync), and the
fan-out group's seq is checked in each database.

What each role costs: over each point, from just before its first send
until every client has run its final sync, the CPU seconds of every process
of every role (psutil, from /proc), less what the idle target used over the
same time (measured before the first point), against the work done:
messages sent, deliveries and confirmation frames (the clients' records),
Kafka records produced (the topics' end offsets), records the bridges
handled (their /metrics), PUBLISH commands on each Redis (INFO
commandstats) and transactions committed in the target's database
(pg_stat_database). benchmarks/scaleout_report.py turns them into costs
per unit of work and prints the tables. Results: `.run/bench/scaleout.json`.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psycopg
import redis
import requests
from confluent_kafka import KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, OffsetSpec
from prometheus_client.parser import text_string_to_metric_families
from websockets.sync.client import connect

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import scaleout_report, suite
from benchmarks.monitor import cpu_snapshot, pid_from_file, service_pids
from chat_project.process_tuning import raise_open_file_limit
from tests.support.redis_server import RUN_DIR, redis_script

if TYPE_CHECKING:
    from tests.support.stack import Proc, Stack

SCALE_BROKERS = int(os.environ.get("BENCH_SCALE_BROKERS") or 3)
SCALE_PARTITIONS = int(os.environ.get("BENCH_SCALE_PARTITIONS") or 12)
SCALE_BRIDGES = 2
SCALE_WEB = 4
SCALE_REDIS = 2
# The ports of everything the run starts: Kafka node N on BASE + 100 * (N - 1) (controller one above),
# the Redis servers from BASE + 10, the web processes from BASE + 20, the bridges' HTTP from BASE + 30,
# the single node's web and bridge at BASE + 40 and BASE + 41.
PORT_BASE = int(os.environ.get("BENCH_SCALE_PORT") or int(os.environ.get("KAFKA_PORT") or 19092) + 10)
DIRECT_RATES = (100, 200)
IDLE_SECONDS = 5.0 if suite.QUICK else 15.0
SINGLE, SCALEOUT, NAMES = scaleout_report.SINGLE, scaleout_report.SCALEOUT, scaleout_report.NAMES
BYSTANDER = scaleout_report.BYSTANDER


### Services of the scale-out: Kafka nodes and Redis servers of its own ###


def kafka_env(brokers: int) -> dict[str, str]:
    """The environment of scripts/kafka.sh for the scale-out's Kafka."""
    return {
        **os.environ,
        "KAFKA_BROKERS": str(brokers),
        "KAFKA_PORT": str(PORT_BASE),
        "KAFKA_CONTROLLER_PORT": str(PORT_BASE + 1),
        "KAFKA_DATA_DIR": str(RUN_DIR / "scaleout-kafka"),
    }


def kafka_script(*args: str) -> str:
    """Run scripts/kafka.sh for the scale-out's nodes; return what it printed."""
    result = subprocess.run(
        [str(suite.ROOT / "scripts" / "kafka.sh"), *args],
        env=kafka_env(SCALE_BROKERS),
        capture_output=True,
        text=True,
        timeout=300,
    )
    if result.returncode != 0:
        raise RuntimeError(f"scripts/kafka.sh {' '.join(args)} failed:\n{result.stderr[-3000:]}")
    return result.stdout.strip()


def kafka_pids() -> list[int]:
    """The scale-out's Kafka nodes."""
    data = RUN_DIR / "scaleout-kafka"
    if SCALE_BROKERS == 1:
        files = [data / "kafka.pid"]
    else:
        files = [data / f"node{n}" / "kafka.pid" for n in range(1, SCALE_BROKERS + 1)]
    return [pid for pid in map(pid_from_file, files) if pid]


@contextlib.contextmanager
def scaleout_services() -> Iterator[tuple[str, list[str]]]:
    """Start the scale-out's Kafka and Redis servers (empty); yield the bootstrap servers and the Redis URLs."""
    ports = [PORT_BASE + 10 + n for n in range(SCALE_REDIS)]
    started: list[int] = []
    try:
        kafka_script("stop")
        shutil.rmtree(RUN_DIR / "scaleout-kafka", ignore_errors=True)
        kafka_script("start")
        for port in ports:
            redis_script("start", port, RUN_DIR / f"scaleout-redis-{port}")
            started.append(port)
        yield kafka_script("bootstrap"), [f"redis://127.0.0.1:{port}/0" for port in ports]
    finally:
        for port in started:
            redis_script("stop", port, RUN_DIR / f"scaleout-redis-{port}")
        kafka_script("stop")


### What a point does and costs ###


def wait_for_leaders(bootstrap: str, timeout: float = 120.0) -> None:
    """Wait until every partition of a new cluster's topics has a leader and all its replicas in sync."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    deadline = time.monotonic() + timeout
    while True:
        topics = admin.list_topics(timeout=10).topics.values()
        waiting = [
            f"{topic.topic}/{p.id}"
            for topic in topics
            for p in topic.partitions.values()
            if p.leader < 0 or len(p.isrs) < len(p.replicas)
        ]
        if not waiting:
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"partitions without a leader or in-sync replicas after {timeout:.0f} s: {waiting[:5]}")
        time.sleep(0.5)


def topic_ends(bootstrap: str, attempts: int = 20) -> dict[str, int]:
    """The sum of every partition's end offset, per topic: the records produced so far."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for attempt in range(attempts):
        try:
            metadata = admin.list_topics(timeout=10)
            partitions = [
                TopicPartition(name, p)
                for name, topic in metadata.topics.items()
                if not name.startswith("__")
                for p in topic.partitions
            ]
            ends: dict[str, int] = {}
            for tp, future in admin.list_offsets({tp: OffsetSpec.latest() for tp in partitions}).items():
                ends[tp.topic] = ends.get(tp.topic, 0) + future.result(timeout=15).offset
            return ends
        except KafkaException as exc:  # a leader moving between nodes
            if not exc.args[0].retriable() or attempt == attempts - 1:
                raise
            time.sleep(0.5)
    raise AssertionError("unreachable")


def bridge_records(http: str) -> dict[str, float]:
    """Records a bridge's loops handled so far, per loop (its /metrics)."""
    handled: dict[str, float] = {}
    text = requests.get(f"{http}/metrics", timeout=10).text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "kafka_bridge_records_total" and sample.labels.get("outcome") == "handled":
                loop = sample.labels["loop"]
                handled[loop] = handled.get(loop, 0.0) + sample.value
    return handled


def redis_counts(url: str) -> dict[str, int]:
    """PUBLISH commands, all commands and bytes sent by a Redis server so far."""
    client = redis.Redis.from_url(url)
    try:
        stats, commands = client.info("stats"), client.info("commandstats")
    finally:
        client.close()
    return {
        "publish": int(commands.get("cmdstat_publish", {}).get("calls", 0)),
        "commands": int(stats["total_commands_processed"]),
        "out_bytes": int(stats["total_net_output_bytes"]),
    }


def database_counts(database_url: str) -> dict[str, int]:
    """Transactions committed and rows written in a database so far."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT xact_commit, tup_inserted, tup_updated, tup_deleted FROM pg_stat_database"
            " WHERE datname = current_database()"
        ).fetchone()
    assert row is not None
    return dict(zip(("commits", "inserted", "updated", "deleted"), map(int, row), strict=True))


@dataclass
class Deployment:
    """One target's processes and where to read its counters."""

    key: str
    stack: Stack
    bootstrap: str
    redis_urls: list[str]
    bridges: list[Proc]
    roles: Callable[[], dict[str, list[int]]]
    idle_cpu_per_s: dict[str, float] = field(default_factory=dict)

    def counters(self) -> dict[str, Any]:
        """Every counter of work done so far."""
        loops: dict[str, float] = {}
        for bridge in self.bridges:
            for loop, count in bridge_records(bridge.http).items():
                loops[loop] = loops.get(loop, 0.0) + count
        redis_by_server = [redis_counts(url) for url in self.redis_urls]
        return {
            "kafka_records": topic_ends(self.bootstrap),
            "bridge_records": loops,
            "redis": redis_by_server,
            "database": database_counts(self.stack.database_url),
        }

    def measure_idle(self, seconds: float) -> None:
        """Measure the CPU each role uses with nothing to do (taken off every point's)."""
        first, began = cpu_snapshot(self.roles()), time.monotonic()
        time.sleep(seconds)
        self.idle_cpu_per_s = {
            role: cpu / (time.monotonic() - began) for role, cpu in cpu_delta(first, cpu_snapshot(self.roles())).items()
        }


def cpu_delta(
    first: dict[str, dict[tuple[int, float], float]], last: dict[str, dict[tuple[int, float], float]]
) -> dict[str, float]:
    """CPU seconds of each role between two snapshots."""
    return {
        role: sum(cpu - first.get(role, {}).get(key, 0.0) for key, cpu in procs.items()) for role, procs in last.items()
    }


def difference(before: Any, after: Any) -> Any:
    """`after - before`, through dicts and lists of numbers."""
    if isinstance(after, dict):
        return {key: difference(before.get(key, 0), value) for key, value in after.items()}
    if isinstance(after, list):
        return [difference(b, a) for b, a in zip(before, after, strict=True)]
    return after - before


class PointMeter:
    """CPU seconds per role and the counters of work, from just before the first send until the clients are done."""

    def __init__(self, deployment: Deployment) -> None:
        self.deployment = deployment

    def begin(self) -> None:
        """Take the first snapshot."""
        self.roles = self.deployment.roles()
        self.cpu, self.counts = cpu_snapshot(self.roles), self.deployment.counters()
        self.began = time.monotonic()

    def end(self) -> dict[str, Any]:
        """Return the CPU seconds (raw and less the idle target's) and the work done since `begin`."""
        cpu = cpu_delta(self.cpu, cpu_snapshot(self.roles))
        seconds = time.monotonic() - self.began
        idle = self.deployment.idle_cpu_per_s
        return {
            "seconds": round(seconds, 2),
            "cpu_s": {role: round(value, 3) for role, value in cpu.items()},
            "cpu_s_net": {role: round(value - idle.get(role, 0.0) * seconds, 3) for role, value in cpu.items()},
            "work": difference(self.counts, self.deployment.counters()),
        }


### The two targets ###


def users_spec(prefix: str) -> dict[str, Any]:
    """PAIRS direct pairs and a fan-out group of FANOUT_MEMBERS."""
    pairs, members = suite.PAIRS, suite.FANOUT_MEMBERS
    return {
        "prefix": prefix,
        "users": 2 * pairs + members,
        "direct": [[2 * i, 2 * i + 1] for i in range(pairs)],
        "groups": [list(range(2 * pairs, 2 * pairs + members))],
    }


def put_pairs(layout: suite.Layout, urls: list[str]) -> None:
    """Pair i: its sender on web process i, its receiver on the next one (round robin)."""
    for spec in layout.sockets:
        pair, is_receiver = divmod(spec["id"], 2)
        spec["url"] = urls[(pair + is_receiver) % len(urls)]


def put_members(layout: suite.Layout, urls: list[str]) -> None:
    """Member j on web process j (round robin): every sender has receivers on every process."""
    for spec in layout.sockets:
        spec["url"] = urls[spec["id"] % len(urls)]


def make_target(deployment: Deployment, web_base: str, urls: list[str] | None) -> suite.Target:
    """Seed the deployment's database and lay out the sockets (on `urls`, one per web process, if given)."""
    started = time.perf_counter()
    seeded = suite.seed_stack(deployment.stack, users_spec(deployment.key))
    users = seeded["users"]
    print(f"   {len(users)} users and their conversations created in {time.perf_counter() - started:.1f} s", flush=True)
    pairs = suite.direct_layout(users, seeded["direct"], baseline=False)
    fanout_users = users[2 * suite.PAIRS :]
    fanout = suite.group_layout(fanout_users, seeded["groups"][0], suite.FANOUT_SENDERS, baseline=False)
    if urls:
        put_pairs(pairs, urls)
        put_members(fanout, urls)
    layouts = {suite.PAIRS_LAYOUT: pairs, suite.FANOUT_LAYOUT: fanout}
    stack = deployment.stack
    return suite.Target(
        deployment.key, suite.ws_url(web_base), deployment.roles, layouts, last_seqs=lambda: suite.last_seqs(stack)
    )


def start_single(exits: contextlib.ExitStack) -> tuple[Deployment, suite.Target]:
    """The single node on the bench's broker and Redis (stopped when `exits` closes)."""
    from tests.support.stack import Stack

    stack = Stack.create("scale_single", **suite.LIFTED_LIMITS)
    exits.callback(stack.stop)
    bridge = stack.start_bridge(env={"BRIDGE_HTTP_PORT": str(PORT_BASE + 41)})
    web, base = stack.start_web(port=PORT_BASE + 40, processes=suite.WEB_PROCESSES)

    def roles() -> dict[str, list[int]]:
        services = service_pids()
        return {"web": [web.popen.pid], "bridge": [bridge.popen.pid], **services}

    bootstrap = stack.env()["KAFKA_BOOTSTRAP_SERVERS"]
    deployment = Deployment(SINGLE, stack, bootstrap, [os.environ["REDIS_URL"]], [bridge], roles)
    return deployment, make_target(deployment, base, None)


def start_scaleout(
    exits: contextlib.ExitStack, bootstrap: str, redis_urls: list[str]
) -> tuple[Deployment, suite.Target]:
    """The scale-out on its own Kafka and Redis servers (stopped when `exits` closes)."""
    from tests.support.stack import Stack, recreate_database

    extra_env = {
        "REDIS_URL": ",".join(redis_urls),
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "KAFKA_TOPIC_PARTITIONS": str(SCALE_PARTITIONS),
    }
    database_url = recreate_database(os.environ["DATABASE_URL"], "chat_scale_out")
    stack = Stack(name="scale_out", database_url=database_url, extra_env={**extra_env, **suite.LIFTED_LIMITS})
    exits.callback(stack.stop)
    stack.manage("migrate", "--noinput")
    # A fresh cluster: no earlier records for the bridges to skip, only leaders to wait for.
    stack.manage("kafka_topics")
    wait_for_leaders(bootstrap)
    bridges = [stack.start_bridge(env={"BRIDGE_HTTP_PORT": str(PORT_BASE + 30 + n)}) for n in range(SCALE_BRIDGES)]
    webs = [stack.start_web(port=PORT_BASE + 20 + n) for n in range(SCALE_WEB)]
    redis_ports = [int(url.rsplit(":", 1)[1].split("/")[0]) for url in redis_urls]

    def roles() -> dict[str, list[int]]:
        services = service_pids()
        redis_pids = [pid_from_file(RUN_DIR / f"scaleout-redis-{port}" / "redis.pid") for port in redis_ports]
        return {
            "web": [web.popen.pid for web, _base in webs[:-1]],
            BYSTANDER: [webs[-1][0].popen.pid],
            "bridge": [bridge.popen.pid for bridge in bridges],
            "kafka": kafka_pids(),
            "postgres": services["postgres"],
            "redis": [pid for pid in redis_pids if pid],
        }

    deployment = Deployment(SCALEOUT, stack, bootstrap, redis_urls, bridges, roles)
    urls = [suite.ws_url(base) for _web, base in webs[:-1]]
    target = make_target(deployment, webs[0][1], urls)
    target.web_processes = SCALE_WEB
    # The bystander's one socket: a user in no conversation, so that its process listens and delivers nothing.
    (bystander,) = suite.seed_stack(stack, {"prefix": "bystander", "users": 1})["users"]
    socket = connect(
        suite.ws_url(webs[-1][1]), additional_headers={"Authorization": f"Token {bystander['token']}"}, open_timeout=60
    )
    exits.callback(socket.close)
    return deployment, target


### The run ###


def run_points(results: dict[str, Any], pairs: list[tuple[Deployment, suite.Target]]) -> None:
    """Every point on both targets, in random order at each point; results saved after each."""
    points = [(suite.DIRECT, float(rate)) for rate in DIRECT_RATES] + [(suite.FANOUT, float(suite.FANOUT_RATE))]
    for scenario, rate in points:
        for deployment, target in random.sample(pairs, len(pairs)):
            try:
                point = suite.run_point(target, scenario, rate, suite.POINT_SECONDS, meter=PointMeter(deployment))
            except Exception as exc:
                message = f"{scenario} {rate:.0f} {NAMES[target.key]}: {type(exc).__name__}: {exc}"
                print(f"   FAILED {message}", flush=True)
                results["errors"].append(message)
                continue
            point.pop("rss_series", None)
            point.pop("windows", None)
            results["points"].append(point)
            save(results)


def save(results: dict[str, Any]) -> None:
    """Write scaleout.json."""
    suite.OUT_DIR.mkdir(parents=True, exist_ok=True)
    (suite.OUT_DIR / "scaleout.json").write_text(json.dumps(results, indent=1))


def settings_summary() -> dict[str, Any]:
    """What this run was."""
    return {
        "quick": suite.QUICK,
        "point_seconds": suite.POINT_SECONDS,
        "single": {"web_processes": suite.WEB_PROCESSES, "bridges": 1, "brokers": 1, "redis": 1},
        "scaleout": {
            "web_processes": SCALE_WEB,
            "web_processes_with_sockets": SCALE_WEB - 1,
            "bridges": SCALE_BRIDGES,
            "brokers": SCALE_BROKERS,
            "partitions": SCALE_PARTITIONS,
            "redis": SCALE_REDIS,
        },
        "pairs": suite.PAIRS,
        "direct_rates": list(DIRECT_RATES),
        "fanout": {"members": suite.FANOUT_MEMBERS, "senders": suite.FANOUT_SENDERS, "rate": suite.FANOUT_RATE},
        "idle_seconds": IDLE_SECONDS,
        "cpu_count": os.cpu_count(),
        "load_average_at_start": list(os.getloadavg()),
    }


def run() -> dict[str, Any]:
    """Start both targets, run the points, check the groups' seq; return the results."""
    results: dict[str, Any] = {"settings": settings_summary(), "points": [], "idle": {}, "seq": {}, "errors": []}
    print(
        f"== scale-out: {SCALE_BROKERS} Kafka node(s), {SCALE_PARTITIONS} partitions, {SCALE_BRIDGES} bridges, "
        f"{SCALE_WEB} web processes, {SCALE_REDIS} Redis shards; beside the single node",
        flush=True,
    )
    try:
        with contextlib.ExitStack() as exits:
            bootstrap, redis_urls = exits.enter_context(scaleout_services())
            pairs = [start_single(exits), start_scaleout(exits, bootstrap, redis_urls)]
            for deployment, _target in pairs:
                suite.settle(deployment.roles())
                deployment.measure_idle(IDLE_SECONDS)
                results["idle"][deployment.key] = {r: round(v, 4) for r, v in deployment.idle_cpu_per_s.items()}
            print(f"   idle CPU (cores): {results['idle']}", flush=True)
            run_points(results, pairs)
            for deployment, target in pairs:
                group = target.layouts[suite.FANOUT_LAYOUT].sockets[0]["conversation"]
                results["seq"][deployment.key] = suite.check_group_seq(deployment.stack, group)
    except Exception as exc:
        results["errors"].append(f"{type(exc).__name__}: {exc}")
        print(f"   FAILED {type(exc).__name__}: {exc}", flush=True)
    finally:
        results["settings"]["load_average_at_end"] = list(os.getloadavg())
        results["costs"] = scaleout_report.costs(results)
        save(results)
    return results


def main() -> None:
    """Run the scale-out beside the single node and print the tables."""
    raise_open_file_limit()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chat_project.settings")
    print(
        f"make bench ONLY=scaleout{' (BENCH_QUICK=1)' if suite.QUICK else ''}: results in {suite.OUT_DIR}", flush=True
    )
    results = run()
    print()
    print(scaleout_report.render(results))
    print(f"\nJSON: {suite.OUT_DIR / 'scaleout.json'}")


if __name__ == "__main__":
    main()
