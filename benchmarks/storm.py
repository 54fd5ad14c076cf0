"""A reconnect storm: N sockets connect at once, each `sync`s, then all sit idle.

After a deploy every client reconnects within a second or two and sends
`sync`; what a user sees is how long until their `sync.done`. This creates N
users with tokens directly in the stack's database, opens N WebSockets from
several client processes (a minimal WebSocket client on asyncio protocols,
so that the clients are not the bottleneck), sends `sync` on each as soon as
it is open and waits for `sync.done`. It reports connections per second, the
time until every socket had its `sync.done`, per-socket percentiles, then
holds the sockets idle and samples the web process's CPU and RSS.

`storm()` is the reusable core; run as a script it starts its own daphne on
a database of its own (chat_bench_storm) against the services
scripts/bench.sh started:
`storm.py [sockets] [concurrency] [client processes] [web processes]`.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import multiprocessing
import os
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.report import percentile  # noqa: E402
from chat_project.process_tuning import raise_open_file_limit  # noqa: E402

SOCKETS = 10_000
CONCURRENCY = 1_000
CLIENT_PROCESSES = 2
IDLE_SECONDS = 45.0
# Per socket, from its connect attempt to its sync.done.
SOCKET_TIMEOUT_SECONDS = 120.0


### The client: just enough WebSocket (RFC 6455) for a handshake, one frame out, frames in ###


def masked_frame(opcode: int, payload: bytes) -> bytes:
    """Encode one client frame (clients must mask; payloads here are small)."""
    mask = os.urandom(4)
    length = len(payload)
    if length < 126:
        header = bytes([0x80 | opcode, 0x80 | length])
    elif length < 65536:
        header = bytes([0x80 | opcode, 0x80 | 126]) + length.to_bytes(2, "big")
    else:
        header = bytes([0x80 | opcode, 0x80 | 127]) + length.to_bytes(8, "big")
    key = (mask * (length // 4 + 1))[:length]
    body = (int.from_bytes(payload, "big") ^ int.from_bytes(key, "big")).to_bytes(length, "big")
    return header + mask + body


SYNC_FRAME = json.dumps({"type": "sync", "requestId": "storm"}).encode()


@dataclass
class Result:
    started: float
    opened: float = 0.0
    synced: float = 0.0
    error: str = ""


class StormSocket(asyncio.Protocol):
    """One client socket: handshake, `sync`, wait for `sync.done`, then idle (answering pings)."""

    def __init__(self, host: str, token: str, result: Result, done: asyncio.Future) -> None:
        self.host, self.token, self.result, self.done = host, token, result, done
        self.buffer = b""
        self.upgraded = False
        self.transport: asyncio.Transport | None = None
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        key = base64.b64encode(os.urandom(16)).decode()
        request = (
            "GET /ws/chat/ HTTP/1.1\r\n"
            f"Host: {self.host}\r\n"
            "Upgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
            f"Authorization: Token {self.token}\r\n\r\n"
        )
        transport.write(request.encode())  # type: ignore[attr-defined]

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if not self.upgraded:
            head, sep, rest = self.buffer.partition(b"\r\n\r\n")
            if not sep:
                return
            status = head.split(b"\r\n", 1)[0]
            if b" 101 " not in status:
                self.fail(status.decode(errors="replace"))
                return
            self.upgraded = True
            self.result.opened = time.time()
            self.buffer = rest
            self.transport.write(masked_frame(0x1, SYNC_FRAME))  # type: ignore[union-attr]
        self.read_frames()

    def read_frames(self) -> None:
        while len(self.buffer) >= 2:
            opcode, length = self.buffer[0] & 0x0F, self.buffer[1] & 0x7F
            offset = 2
            if length == 126:
                if len(self.buffer) < 4:
                    return
                length, offset = int.from_bytes(self.buffer[2:4], "big"), 4
            elif length == 127:
                if len(self.buffer) < 10:
                    return
                length, offset = int.from_bytes(self.buffer[2:10], "big"), 10
            if len(self.buffer) < offset + length:
                return
            payload = self.buffer[offset : offset + length]
            self.buffer = self.buffer[offset + length :]
            if opcode == 0x9:  # the server's keep-alive ping
                self.transport.write(masked_frame(0xA, payload))  # type: ignore[union-attr]
            elif opcode == 0x8:
                self.fail(f"closed by the server: {int.from_bytes(payload[:2], 'big') if payload else None}")
            elif opcode == 0x1 and b'"sync.done"' in payload and not self.done.done():
                self.result.synced = time.time()
                self.done.set_result(None)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.fail(f"connection lost: {exc}")

    def fail(self, reason: str) -> None:
        if not self.done.done():
            self.result.error = reason
            self.done.set_result(None)
        if self.transport is not None and not self.closed:
            self.transport.close()

    def close(self) -> None:
        if self.transport is not None and not self.closed:
            self.transport.write(masked_frame(0x8, (1000).to_bytes(2, "big")))
            self.transport.close()


async def open_sockets(
    host: str, port: int, tokens: list[str], concurrency: int, start_at: float
) -> tuple[list[Result], list[StormSocket]]:
    """Open one socket per token, at most `concurrency` handshakes in flight, from `start_at` (epoch)."""
    loop = asyncio.get_running_loop()
    pending = iter(tokens)
    results: list[Result] = []
    sockets: list[StormSocket] = []

    async def worker() -> None:
        # A fixed set of workers rather than a semaphore: waking one of thousands of
        # semaphore waiters costs time in proportion to their number.
        for token in pending:
            result = Result(started=time.time())
            results.append(result)
            done = loop.create_future()
            protocol = StormSocket(f"{host}:{port}", token, result, done)
            try:
                await loop.create_connection(lambda protocol=protocol: protocol, host, port)
                sockets.append(protocol)
                await asyncio.wait_for(done, SOCKET_TIMEOUT_SECONDS)
            except (OSError, TimeoutError) as exc:
                result.error = result.error or repr(exc)

    await asyncio.sleep(max(0.0, start_at - time.time()))
    await asyncio.gather(*(worker() for _ in range(min(concurrency, len(tokens)))))
    return results, sockets


def client_process(url: str, tokens: list[str], concurrency: int, start_at: float, results: Any, release: Any) -> None:
    """Run one client process: storm, report the results, hold the sockets until released."""
    raise_open_file_limit()
    parts = urlsplit(url)

    async def run() -> None:
        host, port = parts.hostname or "127.0.0.1", parts.port or 80
        opened, sockets = await open_sockets(host, port, tokens, concurrency, start_at)
        cpu = time.process_time()
        results.put(([(r.started, r.opened, r.synced, r.error) for r in opened], cpu))
        await asyncio.to_thread(release.wait)
        for socket in sockets:
            socket.close()
        await asyncio.sleep(0.5)

    asyncio.run(run())


### Server figures ###


def process_tree(pid: int) -> list[Any]:
    """Return a process and its children (several web workers may share one port)."""
    import psutil

    root = psutil.Process(pid)
    return [root, *root.children(recursive=True)]


def cpu_seconds(pid: int) -> float:
    """Return the CPU time (user + system) a process and its children used so far."""
    import psutil

    total = 0.0
    for proc in process_tree(pid):
        with contextlib.suppress(psutil.NoSuchProcess):
            times = proc.cpu_times()
            total += times.user + times.system
    return total


def rss_bytes(pid: int) -> int:
    """Return the resident memory of a process and its children."""
    import psutil

    total = 0
    for proc in process_tree(pid):
        with contextlib.suppress(psutil.NoSuchProcess):
            total += proc.memory_info().rss
    return total


@dataclass
class Figures:
    """What one storm measured; `as_dict()` is what storm() returns."""

    sockets: int
    concurrency: int
    client_processes: int
    failed: int = 0
    errors: list[str] = field(default_factory=list)
    values: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "sockets": self.sockets,
            "concurrency": self.concurrency,
            "client_processes": self.client_processes,
            "failed": self.failed,
            "errors": self.errors[:5],
            **self.values,
        }


async def storm(
    base_url: str,
    tokens: list[str],
    concurrency: int,
    *,
    client_processes: int = CLIENT_PROCESSES,
    server_pid: int | None = None,
    idle_seconds: float = IDLE_SECONDS,
) -> dict[str, Any]:
    """Connect one socket per token, `sync` on each, hold them idle; return the figures.

    Times are in seconds. With `server_pid`, also the server's (and its
    children's) CPU during the storm and while idle, and its RSS before and
    while idle.
    """
    context = multiprocessing.get_context("spawn")
    results, release = context.Queue(), context.Event()
    count = max(1, min(client_processes, len(tokens)))
    start_at = time.time() + 2.0 + 0.5 * count  # after every client process has started
    procs = [
        context.Process(
            target=client_process,
            args=(base_url, tokens[i::count], max(1, concurrency // count), start_at, results, release),
            daemon=True,
        )
        for i in range(count)
    ]
    for proc in procs:
        proc.start()
    figures = Figures(sockets=len(tokens), concurrency=concurrency, client_processes=count)
    values = figures.values
    try:
        if server_pid is not None:
            values["rss_before_mb"] = rss_bytes(server_pid) / 2**20
            await asyncio.sleep(max(0.0, start_at - time.time()))
            cpu_start = cpu_seconds(server_pid)
        rows, client_cpu = [], 0.0
        for _ in procs:
            part, cpu = await asyncio.to_thread(results.get)
            rows.extend(part)
            client_cpu += cpu
        ok = [(started, opened, synced) for started, opened, synced, error in rows if not error]
        figures.failed = len(rows) - len(ok)
        figures.errors = sorted({error for *_, error in rows if error})
        last_open = max((opened for _s, opened, _d in ok), default=start_at)
        last_sync = max((synced for *_, synced in ok), default=start_at)
        values["connections_per_second"] = len(ok) / max(last_open - start_at, 1e-9)
        values["seconds_to_all_open"] = last_open - start_at
        values["seconds_to_all_sync_done"] = last_sync - start_at
        per_socket = [synced - started for started, _o, synced in ok]
        handshakes = [opened - started for started, opened, _d in ok]
        for p in (50, 99):
            values[f"sync_done_p{p}"] = percentile(per_socket, p)
            values[f"handshake_p{p}"] = percentile(handshakes, p)
        values["sync_done_max"] = max(per_socket, default=0.0)
        values["client_cpu_seconds"] = client_cpu
        if server_pid is not None:
            storm_seconds = max(last_sync - start_at, 1e-9)
            storm_cpu = cpu_seconds(server_pid) - cpu_start
            values["server_cpu_storm_percent"] = 100 * storm_cpu / storm_seconds
            # What each socket costs the server, whatever else the machine's cores are busy with.
            values["server_cpu_ms_per_socket"] = 1000 * storm_cpu / max(len(ok), 1)
            # Idle: let the tail of the storm settle, then measure a full heartbeat period or more.
            await asyncio.sleep(2.0)
            cpu_idle_start, idle_started = cpu_seconds(server_pid), time.monotonic()
            await asyncio.sleep(idle_seconds)
            idle = time.monotonic() - idle_started
            values["idle_cpu_percent"] = 100 * (cpu_seconds(server_pid) - cpu_idle_start) / idle
            values["idle_rss_mb"] = rss_bytes(server_pid) / 2**20
    finally:
        release.set()
        for proc in procs:
            await asyncio.to_thread(proc.join, 30)
            if proc.is_alive():
                proc.kill()
    return figures.as_dict()


### As a script: its own daphne, N users with tokens ###


def create_tokens(count: int) -> list[str]:
    """Create `count` users with a token each in bulk (registering over REST would take minutes)."""
    from django.contrib.auth import get_user_model
    from rest_framework.authtoken.models import Token

    run = uuid.uuid4().hex[:6]
    users = get_user_model().objects.bulk_create(
        [get_user_model()(username=f"storm-{run}-{i}", password="!") for i in range(count)], batch_size=2000
    )
    tokens = Token.objects.bulk_create([Token(key=Token.generate_key(), user=user) for user in users], batch_size=2000)
    return [token.key for token in tokens]


def report(figures: dict[str, Any]) -> str:
    """Describe the figures in a few lines."""
    v = figures
    lines = [
        f"{v['sockets']} sockets, {v['concurrency']} handshakes in flight, {v['client_processes']} client processes:"
        f" {v['failed']} failed {v['errors'] or ''}",
        f"  accepted {v['connections_per_second']:.0f} connections/s (all open after {v['seconds_to_all_open']:.1f} s)",
        f"  every sync.done after {v['seconds_to_all_sync_done']:.1f} s",
        f"  per socket, connect -> sync.done: p50 {v['sync_done_p50'] * 1000:.0f} ms,"
        f" p99 {v['sync_done_p99'] * 1000:.0f} ms, max {v['sync_done_max'] * 1000:.0f} ms"
        f" (handshake p50 {v['handshake_p50'] * 1000:.0f} ms, p99 {v['handshake_p99'] * 1000:.0f} ms)",
        f"  clients used {v['client_cpu_seconds']:.1f} CPU s",
    ]
    if "idle_rss_mb" in v:
        lines += [
            f"  server CPU during the storm {v['server_cpu_storm_percent']:.0f}% of one core,"
            f" {v['server_cpu_ms_per_socket']:.2f} ms per socket",
            f"  idle: server RSS {v['idle_rss_mb']:.0f} MB (before the storm {v['rss_before_mb']:.0f} MB),"
            f" CPU {v['idle_cpu_percent']:.1f}% of one core",
        ]
    return "\n".join(lines)


async def main() -> None:
    sockets = int(sys.argv[1]) if len(sys.argv) > 1 else SOCKETS
    concurrency = int(sys.argv[2]) if len(sys.argv) > 2 else CONCURRENCY
    client_processes = int(sys.argv[3]) if len(sys.argv) > 3 else CLIENT_PROCESSES
    web_processes = int(sys.argv[4]) if len(sys.argv) > 4 else 1
    raise_open_file_limit()
    # This process writes the users into the stack's database with Django.
    server = urlsplit(os.environ["DATABASE_URL"])
    os.environ["DATABASE_URL"] = urlunsplit(server._replace(path="/chat_bench_storm"))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chat_project.settings")
    import django

    django.setup()
    from tests.support.stack import Stack

    stack = Stack.create("bench_storm")
    try:
        web, base = stack.start_web(processes=web_processes)
        started = time.perf_counter()
        tokens = await asyncio.to_thread(create_tokens, sockets)
        print(f"{sockets} users with tokens created in {time.perf_counter() - started:.1f} s")
        figures = await storm(base, tokens, concurrency, client_processes=client_processes, server_pid=web.popen.pid)
        print(report(figures))
        print(json.dumps(figures))
    finally:
        stack.stop()


if __name__ == "__main__":
    asyncio.run(main())
