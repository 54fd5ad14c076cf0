"""`make bench`: the chat's full path against baselines, measured in one run with the same clients.

Targets, all on the same PostgreSQL and Redis, with production settings
(DJANGO_DEBUG=0):

- full path: daphne (`manage.py serve`) and `run_kafka_bridge`: WebSocket ->
  PostgreSQL (message, watermarks, outbox) -> Kafka -> bridge -> Redis
  channel layer -> the recipients' WebSockets;
- tutorial: the Channels tutorial's chat room (benchmarks/baseline), a
  group_send per message on the same pub/sub channel layer;
- tutorial + INSERT: the same, plus one INSERT per message through
  `database_sync_to_async`.

The baselines run as many daphne processes as the full path's web server
does (sharing one listening socket). The load (benchmarks/load.py, in
CLIENT_PROCESSES processes of its own) is open loop: sends are due at fixed
times regardless of acks, spread evenly over the senders. Every socket
confirms by watermark (contract 1.2: `message.received` with `upToSeq`, at
most once per conversation per 100 ms); the tutorial targets get the same
frames and ignore them. Latency is send -> the receiver's `message.new` and
send -> `message.ack`. Lost = acked but neither received live nor brought by
a final `sync` after the drain ("by sync" is counted apart; a message acked
only after that sync began is "unresolved"); dup = repeated `message.new`
for one message.

Scenarios, each full-path point beside its baseline in the same run (the
targets of a rate in random order, so that a noisy neighbour hits them
alike):

- idle: IDLE_RATE msg/s over PAIRS direct pairs, against tutorial+INSERT;
- direct pairs: the rate ladder RATES (DIRECT_RATE among them), against
  tutorial+INSERT; the best received rate is the capacity;
- busy group: GROUP_SENDERS senders in one conversation of GROUP_MEMBERS
  members, at GROUP_RATES (the first is the busy-group point, the others
  measure its capacity), against the tutorial room of the same sockets; its
  seq is checked in the database;
- fan-out: FANOUT_SENDERS senders in a group of FANOUT_MEMBERS at
  FANOUT_RATE msg/s in all, against the tutorial room of the same sockets;
- overload: OVERLOAD_FACTOR x the full path's measured direct capacity for
  OVERLOAD_SECONDS; the per-user send limit stays lifted (the 20 senders
  stand for many users), so what pushes back is the server's bound on
  sends in flight: acks, `rate_limited` replies (the clients wait their
  `retryAfterMs`), lost, web RSS over time;
- the reconnect storm (benchmarks/storm.py: STORM_SOCKETS sockets connect
  and `sync`, then stay idle);
- the full path on the SQLite default at SQLITE_RATE over the direct pairs.

Database work: for the full path's DIRECT_RATE point and its busy-group
point, PostgreSQL's pg_stat_statements counts the statements of the point
(benchmarks/db_work.py), per message sent and per confirmation frame.

The per-user send limit is lifted throughout. Before each point the
target's processes must be idle again (a backlog from the previous point
digested); a target that delivered less than half of an offered rate is not
driven at higher ones in that scenario, and the report says so.

CPU is the percentage of one core used during the send phase, and RSS the
peak resident memory, each summed over a role's processes and their
children: web, bridge, Kafka, PostgreSQL, Redis, and the load client.
Results: the table on stdout with each baseline, the ratios and the goals,
`.run/bench/results.json`, and `.run/bench/latency.png`. BENCH_QUICK=1 runs
short points and a small storm, to try the harness. Nothing is asserted.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks import db_work, report  # noqa: E402
from benchmarks.baseline.server import BaselineServer, baseline_database, start_baseline  # noqa: E402
from benchmarks.monitor import Monitor, service_pids, serving_processes, settle  # noqa: E402
from chat_project.process_tuning import raise_open_file_limit  # noqa: E402

if TYPE_CHECKING:
    from tests.support.stack import Proc, Stack

QUICK = os.environ.get("BENCH_QUICK") == "1"
POINT_SECONDS = 5.0 if QUICK else 20.0
PAIRS = 20
IDLE_RATE = 10
# The direct-pair rate of the latency goals; one rung of the ladder.
DIRECT_RATE = 200
RATES = (100, DIRECT_RATE, 500, 1000)
GROUP_MEMBERS = 20
GROUP_SENDERS = 4
GROUP_RATE = 100
# Past what either target delivers on two cores: the best received rate is the capacity.
GROUP_RATES = (GROUP_RATE, 400)
FANOUT_MEMBERS = 500
FANOUT_SENDERS = 4
# 5 msg/s to 499 receivers each: 2,495 deliveries a second.
FANOUT_RATE = 5
OVERLOAD_FACTOR = 2
OVERLOAD_SECONDS = 10.0 if QUICK else 60.0
STORM_SOCKETS = 1_000 if QUICK else 10_000
STORM_CONCURRENCY = 1_000
STORM_IDLE_SECONDS = 10.0 if QUICK else 30.0
SQLITE_RATE = 200
CLIENT_PROCESSES = 2
# The production default of `manage.py serve`: one web process per core.
WEB_PROCESSES = int(os.environ.get("WEB_PROCESSES") or os.cpu_count() or 1)
# After the last send: stop waiting once nothing arrived for this long, or after DRAIN_MAX.
DRAIN_QUIET_SECONDS = 3.0
DRAIN_MAX_SECONDS = 30.0
# Between "every client process is ready" and the first send.
GO_DELAY_SECONDS = 1.0
# A target that delivers less than this share of the offered rate is not driven at higher rates.
SKIP_BELOW = 0.5
LIFTED_LIMITS = {"CHAT_SEND_BURST": "1000000", "CHAT_SEND_RATE_PER_SECOND": "1000000"}
OUT_DIR = Path(os.environ.get("BENCH_OUT_DIR", ROOT / ".run" / "bench"))
LOG_DIR = Path(os.environ.get("TEST_LOG_DIR", ROOT / ".run" / "test" / "logs"))

FULL, TUTORIAL, INSERT, SQLITE = "full", "tutorial", "insert", "sqlite"
TARGET_NAMES = report.TARGET_NAMES
IDLE, DIRECT, GROUP, FANOUT, OVERLOAD = "idle", "direct", "busy group", "fan-out", "overload"
# Which sockets each scenario drives.
PAIRS_LAYOUT, GROUP_LAYOUT, FANOUT_LAYOUT = "pairs", "group", "fan-out"
LAYOUT_OF = {
    IDLE: PAIRS_LAYOUT,
    DIRECT: PAIRS_LAYOUT,
    OVERLOAD: PAIRS_LAYOUT,
    SQLITE: PAIRS_LAYOUT,
    GROUP: GROUP_LAYOUT,
    FANOUT: FANOUT_LAYOUT,
}


### Targets and their conversations ###


@dataclass
class Layout:
    """Sockets of one scenario: who is in which conversation and who sends."""

    sockets: list[dict[str, Any]]
    senders: dict[int, int]
    members: dict[str, list[int]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for spec in self.sockets:
            self.members.setdefault(spec["conversation"], []).append(spec["id"])

    def receivers(self, sender: int) -> list[int]:
        """Return the sockets that should get a message of this sender."""
        socket_id = self.senders[sender]
        conversation = self.sockets[socket_id]["conversation"]
        return [s for s in self.members[conversation] if s != socket_id]

    def shares(self, count: int, by_pair: bool) -> list[tuple[list[dict[str, Any]], dict[int, int]]]:
        """Split the sockets over client processes (a direct pair stays together)."""
        shares: list[tuple[list[dict[str, Any]], dict[int, int]]] = [([], {}) for _ in range(count)]
        for spec in self.sockets:
            shares[(spec["id"] // 2 if by_pair else spec["id"]) % count][0].append(spec)
        for sender, socket_id in self.senders.items():
            shares[(socket_id // 2 if by_pair else socket_id) % count][1][sender] = socket_id
        return [share for share in shares if share[0]]


def direct_layout(users: list[dict[str, str]], conversations: list[str], baseline: bool) -> Layout:
    """Pairs: socket 2i (user 2i) sends to socket 2i+1 (user 2i+1) in conversation i."""
    sockets = []
    for index, user in enumerate(users[: 2 * len(conversations)]):
        conversation = conversations[index // 2]
        query = f"?user={user['id']}&rooms={conversation}" if baseline else ""
        sockets.append({"id": index, "token": user["token"], "query": query, "conversation": conversation})
    return Layout(sockets, {pair: 2 * pair for pair in range(len(conversations))})


def group_layout(users: list[dict[str, str]], conversation: str, senders: int, baseline: bool) -> Layout:
    """One group: the first `senders` members send, everyone receives the others' messages."""
    sockets = [
        {
            "id": index,
            "token": user["token"],
            "query": f"?user={user['id']}&rooms={conversation}" if baseline else "",
            "conversation": conversation,
        }
        for index, user in enumerate(users)
    ]
    return Layout(sockets, {sender: sender for sender in range(senders)})


@dataclass
class Target:
    """Something the load client can drive: its URL, its processes, its conversations."""

    key: str
    url: str
    roles: Callable[[], dict[str, list[int]]]
    layouts: dict[str, Layout]
    web_processes: int = 1
    # The last seq of each conversation, where the target can tell (the full path's database).
    last_seqs: Callable[[], dict[str, int]] | None = None


def seed_stack(stack: Stack, spec: dict[str, Any]) -> dict[str, Any]:
    """Create users, tokens and conversations in a stack's database (benchmarks/seed.py)."""
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "seed.py")],
        input=json.dumps(spec),
        cwd=ROOT,
        env=stack.env(),
        capture_output=True,
        text=True,
        timeout=900,
    )
    if result.returncode != 0:
        raise RuntimeError(f"seeding failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout)


def chat_users_spec(prefix: str, with_groups: bool) -> dict[str, Any]:
    """PAIRS direct pairs; with groups, a busy group of GROUP_MEMBERS and a fan-out group of FANOUT_MEMBERS more."""
    spec: dict[str, Any] = {"prefix": prefix, "users": 2 * PAIRS, "direct": [[2 * i, 2 * i + 1] for i in range(PAIRS)]}
    if with_groups:
        first = 2 * PAIRS
        spec["users"] += GROUP_MEMBERS + FANOUT_MEMBERS
        spec["groups"] = [
            list(range(first, first + GROUP_MEMBERS)),
            list(range(first + GROUP_MEMBERS, first + GROUP_MEMBERS + FANOUT_MEMBERS)),
        ]
    return spec


def full_target(key: str, stack: Stack, web: Proc, base: str, bridge: Proc, with_groups: bool) -> Target:
    """The full path of a started stack, with seeded users and conversations."""
    started = time.perf_counter()
    seeded = seed_stack(stack, chat_users_spec(key, with_groups))
    users = seeded["users"]
    print(f"   {len(users)} users and their conversations created in {time.perf_counter() - started:.1f} s", flush=True)
    layouts = {PAIRS_LAYOUT: direct_layout(users, seeded["direct"], baseline=False)}
    if with_groups:
        first = 2 * PAIRS
        group_users = users[first : first + GROUP_MEMBERS]
        fanout_users = users[first + GROUP_MEMBERS :]
        layouts[GROUP_LAYOUT] = group_layout(group_users, seeded["groups"][0], GROUP_SENDERS, baseline=False)
        layouts[FANOUT_LAYOUT] = group_layout(fanout_users, seeded["groups"][1], FANOUT_SENDERS, baseline=False)
    target = Target(key, ws_url(base), lambda: {}, layouts, last_seqs=lambda: last_seqs(stack))
    target.roles = lambda: {"web": [web.popen.pid], "bridge": [bridge.popen.pid], **service_pids()}
    target.web_processes = serving_processes(web.popen.pid, int(base.rsplit(":", 1)[1]))
    return target


def last_seqs(stack: Stack) -> dict[str, int]:
    """Every conversation's last seq, read from the stack's database (PostgreSQL or a SQLite file)."""
    sql = "SELECT id, last_seq FROM messaging_conversation"
    if stack.database_url.startswith("sqlite:///"):
        with contextlib.closing(sqlite3.connect(stack.database_url.removeprefix("sqlite:///"))) as conn:
            rows = conn.execute(sql).fetchall()
    else:
        rows = stack.query(sql)
    return {str(uuid.UUID(str(conversation))): seq for conversation, seq in rows}


def ws_url(base: str) -> str:
    """Return the WebSocket URL of a server's base URL."""
    return base.replace("http://", "ws://") + "/ws/chat/"


def baseline_target(server: BaselineServer, processes: int) -> Target:
    """A baseline server with made-up users and conversations (it checks neither)."""
    users = [{"id": str(1000 + i), "token": "-"} for i in range(2 * PAIRS + GROUP_MEMBERS + FANOUT_MEMBERS)]
    direct = [str(uuid.uuid4()) for _ in range(PAIRS)]
    pids = [proc.pid for proc in server.procs]
    first = 2 * PAIRS
    layouts = {
        PAIRS_LAYOUT: direct_layout(users, direct, baseline=True),
        GROUP_LAYOUT: group_layout(
            users[first : first + GROUP_MEMBERS], str(uuid.uuid4()), GROUP_SENDERS, baseline=True
        ),
        FANOUT_LAYOUT: group_layout(users[first + GROUP_MEMBERS :], str(uuid.uuid4()), FANOUT_SENDERS, baseline=True),
    }
    return Target(server.key, server.url, lambda: {"web": pids, **service_pids()}, layouts, processes)


### One measurement point ###


_points = iter(range(1, 1_000_000))
RUN_TAG = uuid.uuid4().hex[:4]


class Meter(Protocol):
    """Something measured over a point, from just before the first send until every client is done."""

    def begin(self) -> None: ...

    def end(self) -> dict[str, Any]: ...


def run_point(
    target: Target,
    scenario: str,
    rate: float,
    duration: float,
    db: Stack | None = None,
    meter: Meter | None = None,
) -> dict[str, Any]:
    """Drive one target at one rate for `duration` seconds; return the point's figures.

    With `db`, the statements its database runs during the point are counted (benchmarks/db_work.py);
    with `meter`, what it measures goes in the point's "meter".
    """
    layout = target.layouts[LAYOUT_OF[scenario]]
    label = f"{RUN_TAG}{next(_points)}"
    began = time.monotonic()
    waited = settle(target.roles())
    print(
        f"   {scenario}: {TARGET_NAMES[target.key]} at {rate:.0f} msg/s for {duration:.0f} s"
        + (f" (after {waited:.0f} s for the target to go idle)" if waited > 5 else ""),
        flush=True,
    )
    # Where each conversation starts: what a client that kept its messages would know.
    seqs = target.last_seqs() if target.last_seqs else {}
    job_base = {
        "url": target.url,
        "label": label,
        "rate": rate,
        "duration": duration,
        "total_senders": len(layout.senders),
        "drain_quiet": DRAIN_QUIET_SECONDS,
        "drain_max": DRAIN_MAX_SECONDS,
    }
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    log = (LOG_DIR / "bench-client.log").open("a")
    procs: list[subprocess.Popen] = []
    for sockets, senders in layout.shares(CLIENT_PROCESSES, by_pair=LAYOUT_OF[scenario] == PAIRS_LAYOUT):
        proc = subprocess.Popen(
            [sys.executable, str(ROOT / "benchmarks" / "load.py")],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
        )
        assert proc.stdin is not None
        specs = [{**spec, "seq": seqs.get(spec["conversation"])} for spec in sockets]
        proc.stdin.write(json.dumps({**job_base, "sockets": specs, "senders": senders}) + "\n")
        proc.stdin.flush()
        procs.append(proc)
    watchdog = threading.Timer(duration + DRAIN_MAX_SECONDS + 240, lambda: [p.kill() for p in procs])
    watchdog.start()
    monitor: Monitor | None = None
    metered: dict[str, Any] | None = None
    try:
        for proc in procs:
            ready = read_line(proc)
            if "ready" not in ready:
                raise RuntimeError(f"client not ready: {ready.get('error', ready)}")
        if db is not None:
            db_work.reset(db.database_url)
        if meter is not None:
            meter.begin()
        start_at = time.time() + GO_DELAY_SECONDS
        roles = {**target.roles(), "client": [p.pid for p in procs]}
        monitor = Monitor(roles, start_at, duration)
        monitor.start()
        for proc in procs:
            assert proc.stdin is not None
            proc.stdin.write(f"go {start_at}\n")
            proc.stdin.flush()
        records = [read_line(proc) for proc in procs]
        errors = [r["error"] for r in records if "error" in r]
        if errors:
            raise RuntimeError(f"client failed: {errors[0]}")
        metered = meter.end() if meter is not None else None
    finally:
        if monitor is not None:
            monitor.stopped.set()
            monitor.join()
        watchdog.cancel()
        for proc in procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(30)
            if proc.poll() is None:
                proc.kill()
        log.close()
    point = {
        "scenario": scenario,
        "target": target.key,
        "offered": rate,
        "duration": duration,
        "web_processes": target.web_processes,
        "label": label,
        "settled_s": round(waited, 1),
        "point_s": round(time.monotonic() - began, 1),
        **report.summarize(records, layout.receivers),
        **monitor.figures(),
    }
    if db is not None:
        point["db_work"] = db_work.read(
            db.database_url, sent=point["sent"], confirmation_frames=point["confirm_frames"]
        )
    if metered is not None:
        point["meter"] = metered
    print(f"     {report.point_line(point)}", flush=True)
    return point


def read_line(proc: subprocess.Popen) -> dict[str, Any]:
    """Read one JSON line from a client process."""
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line:
        raise RuntimeError(f"client process exited with {proc.wait()}; see {LOG_DIR}/bench-client.log")
    return json.loads(line)


### Scenarios ###


@dataclass
class Results:
    """Everything measured, written to results.json after every scenario."""

    points: list[dict[str, Any]] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)

    def attempt(self, what: str, func: Callable[[], Any]) -> Any:
        """Run one scenario; a failure is recorded and the suite goes on."""
        try:
            return func()
        except Exception as exc:
            message = f"{what}: {type(exc).__name__}: {exc}"
            print(f"   FAILED {message}", flush=True)
            self.errors.append(message)
            return None
        finally:
            self.save()

    def skipped(self, note: str) -> None:
        """Say that a point was not run, and why."""
        print(f"   skipped: {note}", flush=True)
        self.extra.setdefault("skipped", []).append(note)

    def save(self) -> None:
        """Write results.json."""
        OUT_DIR.mkdir(parents=True, exist_ok=True)
        (OUT_DIR / "results.json").write_text(json.dumps(self.as_dict(), indent=1))

    def as_dict(self) -> dict[str, Any]:
        """Return the results as JSON-ready data."""
        return {
            "settings": settings_summary(),
            "points": self.points,
            **self.extra,
            "goals": report.goals(self.points, self.extra, settings_summary()),
            "errors": self.errors,
        }


def settings_summary() -> dict[str, Any]:
    """The constants of this run."""
    return {
        "quick": QUICK,
        "point_seconds": POINT_SECONDS,
        "pairs": PAIRS,
        "idle_rate": IDLE_RATE,
        "direct_rate": DIRECT_RATE,
        "rates": list(RATES),
        "group": {"rates": list(GROUP_RATES), "senders": GROUP_SENDERS, "members": GROUP_MEMBERS},
        "fanout": {"rate": FANOUT_RATE, "senders": FANOUT_SENDERS, "members": FANOUT_MEMBERS},
        "overload": {"factor": OVERLOAD_FACTOR, "seconds": OVERLOAD_SECONDS},
        "storm": {"sockets": STORM_SOCKETS, "concurrency": STORM_CONCURRENCY, "idle_seconds": STORM_IDLE_SECONDS},
        "sqlite_rate": SQLITE_RATE,
        "client_processes": CLIENT_PROCESSES,
        "cpu_count": os.cpu_count(),
        "drain": {"quiet": DRAIN_QUIET_SECONDS, "max": DRAIN_MAX_SECONDS},
    }


def ladder(
    results: Results,
    scenario: str,
    rates: tuple[int, ...],
    targets: list[Target],
    db_at: dict[int, Stack] | None = None,
    required: tuple[int, ...] = (),
) -> None:
    """Drive the targets at each rate in turn, in random order per rate; one that fell behind stops climbing.

    `db_at` names the rates at which the full path's database work is counted; the `required`
    rates (those of the goals) run for every target all the same.
    """
    behind: dict[str, float] = {}
    for rate in rates:
        for target in random.sample(targets, len(targets)):
            if target.key in behind and rate not in required:
                results.skipped(
                    f"{scenario}: {TARGET_NAMES[target.key]} at {rate} msg/s, as it delivered less than "
                    f"{SKIP_BELOW:.0%} of {behind[target.key]:.0f} msg/s"
                )
                continue
            db = (db_at or {}).get(rate) if target.key == FULL else None
            point = results.attempt(
                f"{scenario} {rate} {target.key}",
                lambda t=target, r=rate, d=db: run_point(t, scenario, r, POINT_SECONDS, d),
            )
            if point:
                results.points.append(point)
                if point["received_per_s"] < SKIP_BELOW * rate:
                    behind[target.key] = rate


def check_group_seq(stack: Stack, conversation_id: str, settle_seconds: float = 60.0) -> dict[str, Any]:
    """Check in the database that the group's seq has no gaps and no repeats (once the sends have settled)."""
    sql = (
        "SELECT count(m.id), count(DISTINCT m.seq), min(m.seq), max(m.seq), c.last_seq FROM messaging_conversation c"
        " LEFT JOIN messaging_message m ON m.conversation_id = c.id WHERE c.id = %s GROUP BY c.last_seq"
    )
    deadline = time.monotonic() + settle_seconds
    previous = None
    while True:
        row = stack.query(sql, conversation_id)[0]
        if row == previous or time.monotonic() > deadline:
            break
        previous = row
        time.sleep(2.0)
    count, distinct, low, high, last_seq = row
    return {
        "messages": count,
        "distinct_seq": distinct,
        "min": low,
        "max": high,
        "last_seq": last_seq,
        "gapless": bool(count) and count == distinct == high and low == 1 and last_seq == high,
    }


def measured_capacity(points: list[dict[str, Any]]) -> float:
    """The full path's best received rate over the direct pairs."""
    return max((p["received_per_s"] for p in points if p["target"] == FULL and p["scenario"] == DIRECT), default=0.0)


def storm_users(stack: Stack) -> list[str]:
    """Create STORM_SOCKETS users with tokens; return the tokens."""
    started = time.perf_counter()
    users = seed_stack(stack, {"prefix": "storm", "users": STORM_SOCKETS})["users"]
    print(f"   {len(users)} storm users created in {time.perf_counter() - started:.1f} s", flush=True)
    return [user["token"] for user in users]


def run_storm(stack: Stack, web: Proc, base: str, roles: dict[str, list[int]]) -> dict[str, Any]:
    """The reconnect storm of benchmarks/storm.py against the full path's web server."""
    from benchmarks.storm import storm

    tokens = storm_users(stack)
    print(f"   reconnect storm: {len(tokens)} sockets, then {STORM_IDLE_SECONDS:.0f} s idle", flush=True)
    monitor = Monitor(roles, time.time(), 1e9)
    monitor.start()
    try:
        figures = asyncio.run(
            storm(
                base,
                tokens,
                STORM_CONCURRENCY,
                client_processes=CLIENT_PROCESSES,
                server_pid=web.popen.pid,
                idle_seconds=STORM_IDLE_SECONDS,
            )
        )
    finally:
        monitor.stopped.set()
        monitor.join()
    samples = monitor.figures()
    figures["rss_mb_peak"] = samples["rss_mb"]
    figures["rss_series"] = samples["rss_series"]
    print(f"     {report.storm_line(figures)}", flush=True)
    return figures


def sqlite_stack() -> Stack:
    """A stack on a SQLite file, as `make run` uses by default (same Kafka and Redis)."""
    from tests.support.stack import Stack, loop_group_suffixes, start_group_at_end

    path = OUT_DIR / "sqlite" / "db.sqlite3"
    path.parent.mkdir(parents=True, exist_ok=True)
    for stale in path.parent.glob("db.sqlite3*"):
        stale.unlink()
    stack = Stack(name="bench_sqlite", database_url=f"sqlite:///{path}", extra_env=dict(LIFTED_LIMITS))
    stack.manage("migrate", "--noinput")
    stack.manage("kafka_topics")
    for suffix in loop_group_suffixes():
        start_group_at_end(stack.env()["KAFKA_CONSUMER_GROUP"] + suffix)
    return stack


def full_path_runs(results: Results) -> None:
    """The full path beside its baselines, then overload and the storm on the full path."""
    from tests.support.stack import Stack

    print("== starting the full path (PostgreSQL) and the baselines", flush=True)
    stack = Stack.create("bench", **LIFTED_LIMITS)
    db_work.enable(stack.database_url)
    baselines: list[BaselineServer] = []
    try:
        bridge = stack.start_bridge()
        web, base = stack.start_web(processes=WEB_PROCESSES)
        full = full_target(FULL, stack, web, base, bridge, with_groups=True)
        database_url = baseline_database()
        for key in (TUTORIAL, INSERT):
            baselines.append(start_baseline(key, database_url, full.web_processes, insert=key == INSERT))
        tutorial, insert = (baseline_target(server, full.web_processes) for server in baselines)
        results.extra["web_processes"] = full.web_processes
        print(f"   web processes per target: {full.web_processes}", flush=True)

        print(f"== idle: {IDLE_RATE} msg/s over {PAIRS} direct pairs, {POINT_SECONDS:.0f} s per point", flush=True)
        ladder(results, IDLE, (IDLE_RATE,), [insert, full])

        print(f"== direct pairs: {', '.join(map(str, RATES))} msg/s, {POINT_SECONDS:.0f} s per point", flush=True)
        ladder(results, DIRECT, RATES, [insert, full], db_at={DIRECT_RATE: stack}, required=(DIRECT_RATE,))

        print(
            f"== busy group: {GROUP_SENDERS} senders, {GROUP_MEMBERS} members, "
            f"{', '.join(map(str, GROUP_RATES))} msg/s",
            flush=True,
        )
        ladder(results, GROUP, GROUP_RATES, [tutorial, full], db_at={GROUP_RATE: stack})
        group_id = full.layouts[GROUP_LAYOUT].sockets[0]["conversation"]
        results.extra["busy_group_seq"] = results.attempt("group seq", lambda: check_group_seq(stack, group_id))

        print(
            f"== fan-out: {FANOUT_SENDERS} senders, {FANOUT_MEMBERS} members, {FANOUT_RATE} msg/s "
            f"({FANOUT_RATE * (FANOUT_MEMBERS - 1):,} deliveries/s)",
            flush=True,
        )
        ladder(results, FANOUT, (FANOUT_RATE,), [tutorial, full])
        fanout_id = full.layouts[FANOUT_LAYOUT].sockets[0]["conversation"]
        results.extra["fanout_seq"] = results.attempt("fan-out seq", lambda: check_group_seq(stack, fanout_id))
        for server in baselines:
            server.stop()
        baselines.clear()

        capacity = measured_capacity(results.points)
        offered = max(100.0, round(OVERLOAD_FACTOR * capacity, -1))
        print(
            f"== overload: {offered:.0f} msg/s ({OVERLOAD_FACTOR} x the measured {capacity:.0f} msg/s) "
            f"for {OVERLOAD_SECONDS:.0f} s",
            flush=True,
        )
        point = results.attempt("overload", lambda: run_point(full, OVERLOAD, offered, OVERLOAD_SECONDS))
        if point:
            point["capacity_measured"] = capacity
            results.points.append(point)

        print("== reconnect storm", flush=True)
        results.extra["storm"] = results.attempt("storm", lambda: run_storm(stack, web, base, full.roles()))
    finally:
        for server in baselines:
            server.stop()
        stack.stop()


def sqlite_runs(results: Results) -> None:
    """The full path on a SQLite file at SQLITE_RATE."""
    print(f"== full path on SQLite: {SQLITE_RATE} msg/s for {POINT_SECONDS:.0f} s", flush=True)
    stack = sqlite_stack()
    try:
        bridge = stack.start_bridge()
        web, base = stack.start_web(processes=WEB_PROCESSES)
        target = full_target(SQLITE, stack, web, base, bridge, with_groups=False)
        point = run_point(target, SQLITE, SQLITE_RATE, POINT_SECONDS)
        results.points.append(point)
    finally:
        stack.stop()


def main() -> None:
    """Run every scenario, then print the table and write the JSON and the plot."""
    raise_open_file_limit()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chat_project.settings")
    started = time.monotonic()
    results = Results()
    print(f"make bench{' (BENCH_QUICK=1)' if QUICK else ''}: results in {OUT_DIR}", flush=True)
    results.attempt("full path and baselines", lambda: full_path_runs(results))
    results.attempt("SQLite", lambda: sqlite_runs(results))
    data = results.as_dict()
    data["seconds"] = round(time.monotonic() - started, 1)
    (OUT_DIR / "results.json").write_text(json.dumps(data, indent=1))
    print()
    print(report.render(data))
    plot = results.attempt("plot", lambda: report.plot(data, OUT_DIR / "latency.png"))
    print(f"\nJSON: {OUT_DIR / 'results.json'}" + (f"\nplot: {plot}" if plot else ""))
    print(f"total {data['seconds']:.0f} s")


if __name__ == "__main__":
    main()
