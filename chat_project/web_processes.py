"""Several daphne processes behind one port: the parent binds, the children serve.

The parent binds the listening socket once and starts its children
(`manage.py serve --fd N`), which all accept on it, so the kernel spreads new
connections across them. The parent restarts a child that dies, forwards
SIGTERM and SIGINT to the children and waits for them to close their sockets.
A child dies with its parent even when the parent is SIGKILLed (Linux).

Metrics: the parent gives its children a fresh PROMETHEUS_MULTIPROC_DIR
(inside the one set in the environment, if any), where each child writes its
metric values, so that the child answering /metrics sums them over all (see
chat_project/metrics.py). The parent marks a dead child's live gauges gone
and removes the directory when it stops.
"""

from __future__ import annotations

import ctypes
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

logger = logging.getLogger(__name__)


def mark_process_dead(pid: int, metrics_dir: str) -> None:
    """Drop a dead child's live gauges (its open sockets) from the summed metrics."""
    # Imported here: the parent imports prometheus_client only once the directory is set.
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(pid, metrics_dir)


MANAGE_PY = Path(__file__).resolve().parent.parent / "manage.py"
POLL_SECONDS = 0.2
# A child that ran this long before dying is restarted after the first delay again.
STABLE_SECONDS = 30.0
FIRST_RESTART_DELAY_SECONDS = 1.0
MAX_RESTART_DELAY_SECONDS = 30.0
# The parent is gone within 10 s of SIGTERM: children still running after this are killed.
STOP_SECONDS = 9.0
PR_SET_PDEATHSIG = 1
# Where prometheus_client's multiprocess mode keeps each process's values.
MULTIPROC_DIR = "PROMETHEUS_MULTIPROC_DIR"


def listen(host: str, port: int) -> socket.socket:
    """Bind and listen on host:port (IPv4 or IPv6) with a socket children can inherit."""
    family, _type, _proto, _name, address = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    sock = socket.create_server(address[:2], family=family, backlog=socket.SOMAXCONN)
    sock.set_inheritable(True)
    return sock


def die_with_parent_hook(parent_pid: int) -> Callable[[], None] | None:
    """Return a pre-exec hook that has the child killed when its parent dies (None where unsupported)."""
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):  # not Linux: children outlive a SIGKILLed parent
        return None

    def hook() -> None:
        prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL))
        # The parent may have died between fork and prctl; then no signal would come.
        if os.getppid() != parent_pid:
            os._exit(1)

    return hook


def describe_exit(code: int) -> str:
    """Describe a child's exit status for the log."""
    return f"signal {signal.Signals(-code).name}" if code < 0 else f"code {code}"


@dataclass
class Child:
    slot: int
    popen: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    quick_deaths: int = 0
    restart_at: float = 0.0


class WebProcesses:
    """The parent of `count` daphne processes sharing one listening socket (see `listen`)."""

    def __init__(self, sock: socket.socket, count: int) -> None:
        self.sock = sock
        self.children = [Child(slot) for slot in range(count)]
        self.stopping = False
        self.preexec = die_with_parent_hook(os.getpid())
        self.metrics_dir = ""

    def run(self) -> None:
        """Serve until SIGTERM or SIGINT, then stop the children and return."""
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)
        host, port = self.sock.getsockname()[:2]
        logger.info("Listening on %s:%d with %d web processes", host, port, len(self.children))
        # Before the first child starts: they read it when they import prometheus_client.
        self.metrics_dir = tempfile.mkdtemp(prefix="chat-web-metrics-", dir=os.environ.get(MULTIPROC_DIR) or None)
        os.environ[MULTIPROC_DIR] = self.metrics_dir
        try:
            while not self.stopping:
                self._tend()
                time.sleep(POLL_SECONDS)
        finally:
            self._stop_children()
            self.sock.close()
            shutil.rmtree(self.metrics_dir, ignore_errors=True)

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        # Only a flag: a child may be half-started right now; the loop forwards the signal.
        self.stopping = True

    def _tend(self) -> None:
        now = time.monotonic()
        for child in self.children:
            if child.popen is not None:
                code = child.popen.poll()
                if code is None:
                    continue
                ran = now - child.started_at
                child.quick_deaths = 0 if ran >= STABLE_SECONDS else child.quick_deaths + 1
                delay = min(
                    FIRST_RESTART_DELAY_SECONDS * 2 ** max(child.quick_deaths - 1, 0), MAX_RESTART_DELAY_SECONDS
                )
                logger.error(
                    "Web process %d (pid %d) exited with %s after %.1f s; restarting it in %.0f s",
                    child.slot,
                    child.popen.pid,
                    describe_exit(code),
                    ran,
                    delay,
                )
                # Its open sockets no longer count; its counters still do.
                mark_process_dead(child.popen.pid, self.metrics_dir)
                child.popen = None
                child.restart_at = now + delay
            if now >= child.restart_at:
                self._start(child)

    def _start(self, child: Child) -> None:
        fd = self.sock.fileno()
        child.popen = subprocess.Popen(
            [sys.executable, str(MANAGE_PY), "serve", "--fd", str(fd)],
            pass_fds=(fd,),
            preexec_fn=self.preexec,
            # Its own process group: a terminal's Ctrl+C reaches the parent only, which stops the children in order.
            process_group=0,
        )
        child.started_at = time.monotonic()
        logger.info("Started web process %d (pid %d)", child.slot, child.popen.pid)

    def _stop_children(self) -> None:
        running = [c.popen for c in self.children if c.popen is not None and c.popen.poll() is None]
        logger.info("Stopping %d web processes", len(running))
        for popen in running:
            popen.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_SECONDS
        for popen in running:
            try:
                popen.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                logger.error("Web process pid %d did not stop in %.0f s; killing it", popen.pid, STOP_SECONDS)
                popen.kill()
                popen.wait()
        logger.info("Web processes stopped")
