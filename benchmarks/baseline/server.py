"""Running the baseline servers: N daphne processes of the tutorial room sharing one listening socket."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LOG_DIR = Path(os.environ.get("TEST_LOG_DIR", ROOT / ".run" / "test" / "logs"))


@dataclass
class BaselineServer:
    """N daphne processes of benchmarks/baseline accepting on one shared listening socket."""

    key: str
    listener: socket.socket
    procs: list[subprocess.Popen]

    @property
    def url(self) -> str:
        """The WebSocket URL."""
        return f"ws://127.0.0.1:{self.listener.getsockname()[1]}/ws/chat/"

    def stop(self) -> None:
        """Terminate the processes and close the socket."""
        for proc in self.procs:
            proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.listener.close()


def baseline_database() -> str:
    """Create the baselines' database (one table) on the suite's PostgreSQL; return its URL."""
    from tests.support.stack import recreate_database, require_env

    url = recreate_database(require_env("DATABASE_URL"), "chat_bench_baseline")
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "benchmarks.baseline.settings", "DATABASE_URL": url}
    subprocess.run(
        [sys.executable, "-m", "django", "migrate", "--run-syncdb", "--noinput"],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
        timeout=120,
    )
    return url


def start_baseline(key: str, database_url: str, processes: int, insert: bool) -> BaselineServer:
    """Start the tutorial room (with BASELINE_INSERT for the INSERT variant) and wait until it answers."""
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen(4096)
    listener.set_inheritable(True)
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "benchmarks.baseline.settings",
        "DATABASE_URL": database_url,
        "REDIS_PREFIX": f"bench-baseline-{key}",
        "BASELINE_INSERT": "1" if insert else "0",
        "PYTHONUNBUFFERED": "1",
    }
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    fd = listener.fileno()
    procs = []
    for index in range(processes):
        log = (LOG_DIR / f"baseline-{key}-{index}.log").open("ab")
        procs.append(
            subprocess.Popen(
                [sys.executable, "-m", "daphne", "--fd", str(fd), "benchmarks.baseline.asgi:application"],
                cwd=ROOT,
                env=env,
                pass_fds=(fd,),
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        )
    server = BaselineServer(key, listener, procs)
    wait_for_sync_done(server.url, procs)
    return server


def wait_for_sync_done(url: str, procs: list[subprocess.Popen], timeout: float = 60.0) -> None:
    """Wait until every process is up and a socket gets its `sync.done`."""
    from websockets.sync.client import connect

    deadline = time.monotonic() + timeout
    while True:
        if any(proc.poll() is not None for proc in procs):
            raise RuntimeError(f"a baseline server exited; see {LOG_DIR}/baseline-*.log")
        try:
            with connect(url, open_timeout=5, additional_headers={"Authorization": "Token -"}) as conn:
                conn.send(json.dumps({"type": "sync", "requestId": "ready"}))
                if json.loads(conn.recv(timeout=5)).get("type") == "sync.done":
                    time.sleep(1.0)  # the other processes were started at the same moment
                    return
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
