"""What the benchmarked processes use: CPU and resident memory per role, sampled while a point runs.

A role (web, bridge, kafka, postgres, redis, client) is a list of root
pids; each figure is summed over those processes and all their children.
CPU is in percent of one core; RSS in MB.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SAMPLE_SECONDS = 1.0
# Before each point the target's web and bridge must be this idle (% of one core over 1 s), or SETTLE_MAX passed.
SETTLE_CPU_PERCENT = 20.0
SETTLE_MAX_SECONDS = 60.0


def process_tree(pids: list[int]) -> list[Any]:
    """Return the processes and all their children."""
    import psutil

    procs = []
    for pid in pids:
        with contextlib.suppress(psutil.NoSuchProcess):
            root = psutil.Process(pid)
            procs.extend([root, *root.children(recursive=True)])
    return procs


def cpu_snapshot(roles: dict[str, list[int]]) -> dict[str, dict[tuple[int, float], float]]:
    """Return the CPU seconds (user + system) so far of every process of every role."""
    import psutil

    snapshot: dict[str, dict[tuple[int, float], float]] = {}
    for role, pids in roles.items():
        seen = snapshot[role] = {}
        for proc in process_tree(pids):
            with contextlib.suppress(psutil.NoSuchProcess):
                times = proc.cpu_times()
                seen[(proc.pid, proc.create_time())] = times.user + times.system
    return snapshot


def rss_mb(roles: dict[str, list[int]]) -> dict[str, float]:
    """Return the resident memory of each role (its processes and their children), in MB."""
    import psutil

    sizes: dict[str, float] = {}
    for role, pids in roles.items():
        total = 0
        for proc in process_tree(pids):
            with contextlib.suppress(psutil.NoSuchProcess):
                total += proc.memory_info().rss
        sizes[role] = total / 2**20
    return sizes


def pid_listening_on(port: int) -> int | None:
    """Return the pid of the process listening on a local TCP port."""
    import psutil

    for conn in psutil.net_connections(kind="tcp"):
        if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == port and conn.pid:
            return conn.pid
    return None


def pid_from_file(path: Path) -> int | None:
    """Return the live pid a pid file names (its first line), or None."""
    import psutil

    try:
        pid = int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return pid if psutil.pid_exists(pid) else None


def service_pids() -> dict[str, list[int]]:
    """Find the Kafka, PostgreSQL and Redis that scripts/test-services.sh started: pid files, else ports."""
    run_dir = Path(os.environ.get("TEST_RUN_DIR", ROOT / ".run" / "test"))
    found = {
        "kafka": (Path(os.environ.get("KAFKA_DATA_DIR", run_dir / "kafka")) / "kafka.pid", "KAFKA_PORT"),
        "postgres": (Path(os.environ.get("PG_DATA_DIR", run_dir / "postgres")) / "data" / "postmaster.pid", "PG_PORT"),
        "redis": (Path(os.environ.get("REDIS_DIR", run_dir / "redis")) / "redis.pid", "REDIS_PORT"),
    }
    pids: dict[str, list[int]] = {}
    for role, (pid_file, port_variable) in found.items():
        pid = pid_from_file(pid_file)
        if pid is None and os.environ.get(port_variable):
            pid = pid_listening_on(int(os.environ[port_variable]))
        pids[role] = [pid] if pid else []
    return pids


def serving_processes(root_pid: int, port: int) -> int:
    """Count the processes of a web server's tree that accept on its port (a supervisor that only forks aside)."""
    import psutil

    listening = []
    for proc in process_tree([root_pid]):
        with contextlib.suppress(psutil.Error):
            if any(c.status == psutil.CONN_LISTEN and c.laddr.port == port for c in proc.net_connections("tcp")):
                listening.append(proc)
    if len(listening) > 1:
        listening = [p for p in listening if not p.children()]
    return max(1, len(listening))


def cpu_percent_since(
    roles: dict[str, list[int]], first: dict[str, dict[tuple[int, float], float]], began: float
) -> dict[str, float]:
    """Return each role's CPU since the snapshot `first` (taken at monotonic `began`), in percent of one core."""
    now, elapsed = cpu_snapshot(roles), max(time.monotonic() - began, 1e-9)
    return {
        role: 100 * sum(cpu - first[role].get(key, 0.0) for key, cpu in procs.items()) / elapsed
        for role, procs in now.items()
    }


def settle(roles: dict[str, list[int]]) -> float:
    """Wait until a target's web and bridge are idle again (a backlog digested); return the seconds waited."""
    watched = {role: roles[role] for role in ("web", "bridge") if role in roles}
    began = time.monotonic()
    while time.monotonic() - began < SETTLE_MAX_SECONDS:
        first, at = cpu_snapshot(watched), time.monotonic()
        time.sleep(1.0)
        if sum(cpu_percent_since(watched, first, at).values()) < SETTLE_CPU_PERCENT:
            break
    return time.monotonic() - began


class Monitor(threading.Thread):
    """Samples the roles' RSS every SAMPLE_SECONDS and their CPU over [start, start + duration]."""

    def __init__(self, roles: dict[str, list[int]], start_at: float, duration: float) -> None:
        super().__init__(daemon=True)
        self.roles, self.start_at, self.duration = roles, start_at, duration
        self.stopped = threading.Event()
        self.series: list[tuple[float, dict[str, float]]] = []
        self.cpu_percent: dict[str, float] = {}

    def run(self) -> None:
        """Sample until stopped."""
        time.sleep(max(0.0, self.start_at - time.time()))
        first, began = cpu_snapshot(self.roles), time.monotonic()
        while True:
            self.series.append((time.time() - self.start_at, rss_mb(self.roles)))
            if not self.cpu_percent and time.time() >= self.start_at + self.duration:
                self.cpu_percent = self.cpu_since(first, began)
            if self.stopped.wait(SAMPLE_SECONDS):
                break
        if not self.cpu_percent:
            self.cpu_percent = self.cpu_since(first, began)

    def cpu_since(self, first: dict[str, dict[tuple[int, float], float]], began: float) -> dict[str, float]:
        """Return each role's CPU since `first`, in percent of one core."""
        return cpu_percent_since(self.roles, first, began)

    def figures(self) -> dict[str, Any]:
        """Return CPU %, peak RSS per role and the RSS series."""
        peak = {role: max((sample[role] for _t, sample in self.series), default=0.0) for role in self.roles}
        return {
            "cpu_percent": {r: round(v, 1) for r, v in self.cpu_percent.items()},
            "rss_mb": {r: round(v, 1) for r, v in peak.items()},
            "rss_series": [[round(t, 1), {r: round(v, 1) for r, v in s.items()}] for t, s in self.series],
        }
