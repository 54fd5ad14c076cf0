"""`make bench`: the chat's full path against two baselines, measured in one run with the same client.

Targets, all on the same PostgreSQL and Redis, with production settings
(DJANGO_DEBUG=0):

- full path: daphne (`manage.py serve`) and `run_kafka_bridge`: WebSocket ->
  PostgreSQL (message, receipts, outbox) -> Kafka -> bridge -> Redis channel
  layer -> the recipient's WebSocket;
- tutorial: the Channels tutorial's chat room (benchmarks/baseline), a
  group_send per message on the same pub/sub channel layer;
- tutorial + INSERT: the same, plus one INSERT per message through
  `database_sync_to_async`.

The baselines run as many daphne processes as the full path's web server
does (sharing one listening socket). The load (benchmarks/load.py, in
CLIENT_PROCESSES processes of its own) is 20 sender/receiver pairs in direct
conversations, open loop: sends are due at fixed times regardless of acks,
spread evenly over the pairs; receivers confirm with `message.received` in
batches of 20. Latency is send -> the receiver's `message.new` and send ->
`message.ack`. Lost = acked but neither received live nor brought by a final
`sync` after the drain ("by sync" is counted apart; a message acked only
after that sync began is "unresolved"); dup = repeated `message.new` for one
message.

Scenarios: every target at RATES for POINT_SECONDS each (interleaved, so that
a noisy neighbour hits all targets alike); the busy group (GROUP_SENDERS
senders in one conversation of GROUP_MEMBERS members; its seq is checked in
the database); the full path for SUSTAINED_SECONDS at SUSTAINED_RATE; overload
(OVERLOAD_FACTOR x the full path's measured capacity, with the server's
per-connection send limit on: acks, `rate_limited` errors, lost, web RSS over
time); the reconnect storm (benchmarks/storm.py: STORM_SOCKETS sockets
connect and `sync`, then stay idle); and the full path on the SQLite default
at SQLITE_RATE. The send rate limit is lifted wherever capacity is measured.
Before each point the target's processes must be idle again (a backlog from
the previous point digested); a target that delivered less than half of an
offered rate is not driven at higher ones (the sustained run likewise), and
the report says so.

CPU is the percentage of one core used during the send phase, and RSS the
peak resident memory, each summed over a role's processes and their
children: web, bridge, Kafka, PostgreSQL, Redis, and the load client.
Results: one table on stdout with ratios to the baselines and the goals,
`.run/bench/results.json`, and `.run/bench/latency.png`. BENCH_QUICK=1 runs
short points and a small storm, to try the harness. Nothing is asserted.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks import report  # noqa: E402
from benchmarks.baseline.server import BaselineServer, baseline_database, start_baseline  # noqa: E402
from benchmarks.monitor import Monitor, service_pids, serving_processes, settle  # noqa: E402
from chat_project.process_tuning import raise_open_file_limit  # noqa: E402

if TYPE_CHECKING:
    from tests.support.stack import Proc, Stack

QUICK = os.environ.get("BENCH_QUICK") == "1"
RATES = (100, 200, 500, 1000)
POINT_SECONDS = 5.0 if QUICK else 20.0
PAIRS = 20
SUSTAINED_RATE = 500
SUSTAINED_SECONDS = 10.0 if QUICK else 60.0
GROUP_RATE = 300
GROUP_SENDERS = 4
GROUP_MEMBERS = 20
OVERLOAD_FACTOR = 2
OVERLOAD_SECONDS = 10.0 if QUICK else 30.0
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
TARGET_NAMES = {FULL: "full path", TUTORIAL: "tutorial", INSERT: "tutorial+INSERT", SQLITE: "full path, SQLite"}


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


def group_layout(users: list[dict[str, str]], conversation: str, baseline: bool) -> Layout:
    """One group: the first GROUP_SENDERS members send, everyone receives the others' messages."""
    sockets = [
        {
            "id": index,
            "token": user["token"],
            "query": f"?user={user['id']}&rooms={conversation}" if baseline else "",
            "conversation": conversation,
        }
        for index, user in enumerate(users)
    ]
    return Layout(sockets, {sender: sender for sender in range(GROUP_SENDERS)})


@dataclass
class Target:
    """Something the load client can drive: its URL, its processes, its conversations."""

    key: str
    url: str
    roles: Callable[[], dict[str, list[int]]]
    direct: Layout
    group: Layout | None = None
    web_processes: int = 1


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


def chat_users_spec(prefix: str, with_group: bool) -> dict[str, Any]:
    """PAIRS direct pairs, and a group of GROUP_MEMBERS more users."""
    spec: dict[str, Any] = {"prefix": prefix, "users": 2 * PAIRS, "direct": [[2 * i, 2 * i + 1] for i in range(PAIRS)]}
    if with_group:
        spec["users"] += GROUP_MEMBERS
        spec["groups"] = [list(range(2 * PAIRS, 2 * PAIRS + GROUP_MEMBERS))]
    return spec


def full_target(key: str, stack: Stack, web: Proc, base: str, bridge: Proc, with_group: bool) -> Target:
    """The full path of a started stack, with seeded users and conversations."""
    seeded = seed_stack(stack, chat_users_spec(key, with_group))
    users = seeded["users"]
    group = group_layout(users[2 * PAIRS :], seeded["groups"][0], baseline=False) if with_group else None
    target = Target(key, ws_url(base), lambda: {}, direct_layout(users, seeded["direct"], baseline=False), group)
    target.roles = lambda: {"web": [web.popen.pid], "bridge": [bridge.popen.pid], **service_pids()}
    target.web_processes = serving_processes(web.popen.pid, int(base.rsplit(":", 1)[1]))
    return target


def ws_url(base: str) -> str:
    """Return the WebSocket URL of a server's base URL."""
    return base.replace("http://", "ws://") + "/ws/chat/"


### Baseline servers ###


def baseline_target(server: BaselineServer, processes: int) -> Target:
    """A baseline server with made-up users and conversations (it checks neither)."""
    users = [{"id": str(1000 + i), "token": "-"} for i in range(2 * PAIRS + GROUP_MEMBERS)]
    direct = [str(uuid.uuid4()) for _ in range(PAIRS)]
    pids = [proc.pid for proc in server.procs]
    return Target(
        server.key,
        server.url,
        lambda: {"web": pids, **service_pids()},
        direct_layout(users, direct, baseline=True),
        group_layout(users[2 * PAIRS :], str(uuid.uuid4()), baseline=True),
        processes,
    )


### One measurement point ###


_points = iter(range(1, 1_000_000))
RUN_TAG = uuid.uuid4().hex[:4]


def run_point(target: Target, scenario: str, rate: float, duration: float) -> dict[str, Any]:
    """Drive one target at one rate for `duration` seconds; return the point's figures."""
    layout = target.group if scenario == "busy group" else target.direct
    assert layout is not None
    label = f"{RUN_TAG}{next(_points)}"
    waited = settle(target.roles())
    print(
        f"   {scenario}: {TARGET_NAMES[target.key]} at {rate:.0f} msg/s for {duration:.0f} s"
        + (f" (after {waited:.0f} s for the target to go idle)" if waited > 5 else ""),
        flush=True,
    )
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
    for sockets, senders in layout.shares(CLIENT_PROCESSES, by_pair=scenario != "busy group"):
        proc = subprocess.Popen(
            [sys.executable, str(ROOT / "benchmarks" / "load.py")],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
        )
        assert proc.stdin is not None
        proc.stdin.write(json.dumps({**job_base, "sockets": sockets, "senders": senders}) + "\n")
        proc.stdin.flush()
        procs.append(proc)
    watchdog = threading.Timer(duration + DRAIN_MAX_SECONDS + 240, lambda: [p.kill() for p in procs])
    watchdog.start()
    monitor: Monitor | None = None
    try:
        for proc in procs:
            ready = read_line(proc)
            if "ready" not in ready:
                raise RuntimeError(f"client not ready: {ready.get('error', ready)}")
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
        **report.summarize(records, layout.receivers),
        **monitor.figures(),
    }
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
            "goals": report.goals(self.points, self.extra),
            "errors": self.errors,
        }


def settings_summary() -> dict[str, Any]:
    """The constants of this run."""
    return {
        "quick": QUICK,
        "rates": list(RATES),
        "point_seconds": POINT_SECONDS,
        "pairs": PAIRS,
        "sustained": [SUSTAINED_RATE, SUSTAINED_SECONDS],
        "group": {"rate": GROUP_RATE, "senders": GROUP_SENDERS, "members": GROUP_MEMBERS},
        "overload": {"factor": OVERLOAD_FACTOR, "seconds": OVERLOAD_SECONDS},
        "storm": {"sockets": STORM_SOCKETS, "concurrency": STORM_CONCURRENCY, "idle_seconds": STORM_IDLE_SECONDS},
        "sqlite_rate": SQLITE_RATE,
        "client_processes": CLIENT_PROCESSES,
        "cpu_count": os.cpu_count(),
        "drain": {"quiet": DRAIN_QUIET_SECONDS, "max": DRAIN_MAX_SECONDS},
    }


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
    """The full path's best received rate in the direct-pair runs."""
    return max(
        (p["received_per_s"] for p in points if p["target"] == FULL and p["scenario"] in ("rate", "sustained")),
        default=0.0,
    )


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
    """The full path beside both baselines, then overload and the storm on the full path."""
    from tests.support.stack import Stack

    print("== starting the full path (PostgreSQL) and the baselines", flush=True)
    stack = Stack.create("bench", **LIFTED_LIMITS)
    baselines: list[BaselineServer] = []
    try:
        bridge = stack.start_bridge()
        web, base = stack.start_web(processes=WEB_PROCESSES)
        full = full_target(FULL, stack, web, base, bridge, with_group=True)
        database_url = baseline_database()
        for key in (TUTORIAL, INSERT):
            baselines.append(start_baseline(key, database_url, full.web_processes, insert=key == INSERT))
        targets = [baseline_target(server, full.web_processes) for server in baselines] + [full]
        results.extra["web_processes"] = full.web_processes
        print(f"   web processes per target: {full.web_processes}", flush=True)

        print(f"== latency against offered rate, {POINT_SECONDS:.0f} s per point", flush=True)
        behind: dict[str, float] = {}
        for rate in RATES:
            for target in random.sample(targets, len(targets)):
                if target.key in behind:
                    print(f"   rate: {TARGET_NAMES[target.key]} at {rate} msg/s skipped", flush=True)
                    results.extra.setdefault("skipped", []).append(
                        f"{TARGET_NAMES[target.key]} at {rate} msg/s: delivered less than {SKIP_BELOW:.0%} of "
                        f"{behind[target.key]:.0f} msg/s"
                    )
                    continue
                point = results.attempt(
                    f"rate {rate} {target.key}", lambda t=target, r=rate: run_point(t, "rate", r, POINT_SECONDS)
                )
                if point:
                    results.points.append(point)
                    if point["received_per_s"] < SKIP_BELOW * rate:
                        behind[target.key] = rate

        print(f"== busy group: {GROUP_SENDERS} senders, {GROUP_MEMBERS} members, {GROUP_RATE} msg/s", flush=True)
        for target in targets:
            point = results.attempt(
                f"busy group {target.key}", lambda t=target: run_point(t, "busy group", GROUP_RATE, POINT_SECONDS)
            )
            if point:
                results.points.append(point)
        assert full.group is not None
        group_id = full.group.sockets[0]["conversation"]
        results.extra["busy_group_seq"] = results.attempt("group seq", lambda: check_group_seq(stack, group_id))
        for server in baselines:
            server.stop()
        baselines.clear()

        print(f"== full path sustained: {SUSTAINED_RATE} msg/s for {SUSTAINED_SECONDS:.0f} s", flush=True)
        if behind.get(FULL, float("inf")) <= SUSTAINED_RATE:
            note = f"full path sustained at {SUSTAINED_RATE} msg/s: fell behind at {behind[FULL]:.0f} msg/s already"
            print(f"   skipped: {note}", flush=True)
            results.extra.setdefault("skipped", []).append(note)
        else:
            point = results.attempt(
                "sustained", lambda: run_point(full, "sustained", SUSTAINED_RATE, SUSTAINED_SECONDS)
            )
            if point:
                results.points.append(point)

        capacity = measured_capacity(results.points)
        offered = max(100.0, round(OVERLOAD_FACTOR * capacity, -1))
        print(
            f"== overload: {offered:.0f} msg/s ({OVERLOAD_FACTOR} x the measured {capacity:.0f} msg/s) "
            f"for {OVERLOAD_SECONDS:.0f} s, with the server's send limit on",
            flush=True,
        )
        web.terminate()
        for name in LIFTED_LIMITS:
            stack.extra_env.pop(name, None)
        web, base = stack.start_web(processes=WEB_PROCESSES)
        full.url = ws_url(base)
        full.roles = lambda: {"web": [web.popen.pid], "bridge": [bridge.popen.pid], **service_pids()}
        point = results.attempt("overload", lambda: run_point(full, "overload", offered, OVERLOAD_SECONDS))
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
        target = full_target(SQLITE, stack, web, base, bridge, with_group=False)
        point = run_point(target, "sqlite", SQLITE_RATE, POINT_SECONDS)
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
