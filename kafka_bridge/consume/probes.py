"""The bridge's own small HTTP endpoint: /metrics, /healthz and /readyz.

One per bridge process, on BRIDGE_HTTP_HOST:BRIDGE_HTTP_PORT, served on the
bridge's event loop (no thread): a request is read, answered and closed.

- `/healthz`: 200 while the process serves (its event loop turns).
- `/readyz`: 200 while every loop has polled within BRIDGE_READY_POLL_SECONDS
  and holds partitions of its topic; 503 naming each loop that does not
  (stuck in a handler, lost its group after a broker outage, or a standby
  with more consumers in its group than partitions).
- `/metrics`: the bridge's metrics in Prometheus text format (`BRIDGE_REGISTRY`),
  with each loop's readiness (kafka_bridge_loop_ready) as /readyz would answer it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Sequence
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from core.errors import error_body

from ..metrics import BRIDGE_REGISTRY, LoopReadyCollector
from .driver import LoopDriver

logger = logging.getLogger(__name__)

# A request is a line and a few headers; anything slower or larger is dropped.
REQUEST_TIMEOUT_SECONDS = 5.0
MAX_REQUEST_BYTES = 8192
REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed", 503: "Service Unavailable"}
JSON = "application/json"


def loop_readiness(loops: Sequence[LoopDriver[Any]], max_poll_gap: float) -> dict[str, str | None]:
    """Return why each loop is not ready, by name (None for a ready one)."""
    now = time.monotonic()
    return {loop.name: loop.readiness.reason(now, max_poll_gap) for loop in loops}


def readiness(loops: Sequence[LoopDriver[Any]], max_poll_gap: float) -> tuple[bool, dict[str, Any]]:
    """Return whether every loop is ready, and the /readyz body saying why not."""
    reasons = loop_readiness(loops, max_poll_gap)
    failing = {name: reason for name, reason in reasons.items() if reason is not None}
    if failing:
        return False, {"status": "unavailable", "failing": failing}
    return True, {"status": "ok", "loops": {loop.name: len(loop.readiness.assignment) for loop in loops}}


class BridgeHttp:
    """Serve /metrics, /healthz and /readyz for the given loops (their drivers)."""

    def __init__(self, loops: Sequence[LoopDriver[Any]], *, max_poll_gap: float) -> None:
        self.loops = loops
        self.max_poll_gap = max_poll_gap
        self._server: asyncio.Server | None = None
        # Read when scraped, beside the process's own registry.
        self._readiness = CollectorRegistry()
        self._readiness.register(LoopReadyCollector(self._loops_ready))

    def _loops_ready(self) -> dict[str, bool]:
        return {name: reason is None for name, reason in loop_readiness(self.loops, self.max_poll_gap).items()}

    async def start(self, host: str, port: int) -> tuple[str, int]:
        """Listen on host:port (0: a free port); return the address listened on."""
        try:
            self._server = await asyncio.start_server(self._serve, host, port, limit=MAX_REQUEST_BYTES)
        except OSError as exc:
            raise OSError(
                f"Cannot listen on {host}:{port} for the bridge's HTTP endpoint ({exc.strerror}); "
                "set BRIDGE_HTTP_HOST and BRIDGE_HTTP_PORT (0 takes a free port)"
            ) from exc
        bound_host, bound_port = self._server.sockets[0].getsockname()[:2]
        return bound_host, bound_port

    async def close(self) -> None:
        """Stop listening."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    def answer(self, method: str, path: str) -> tuple[int, str, bytes]:
        """Return the status, content type and body for a request."""
        if path not in ("/metrics", "/healthz", "/readyz"):
            return 404, JSON, _json(error_body("not_found", "Not found."))
        if method not in ("GET", "HEAD"):
            return 405, JSON, _json(error_body("method_not_allowed", f"Method {method[:20]!r} not allowed."))
        if path == "/metrics":
            return 200, CONTENT_TYPE_LATEST, generate_latest(BRIDGE_REGISTRY) + generate_latest(self._readiness)
        if path == "/healthz":
            return 200, JSON, _json({"status": "ok"})
        ready, body = readiness(self.loops, self.max_poll_gap)
        return (200 if ready else 503), JSON, _json(body)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            try:
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), REQUEST_TIMEOUT_SECONDS)
                method, target, _version = head.split(b"\r\n", 1)[0].decode("latin-1").split(" ")
            except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError):
                status, content_type, body = 400, JSON, _json(error_body("bad_request", "Bad request."))
                method = "GET"
            else:
                status, content_type, body = self.answer(method, target.split("?", 1)[0])
            headers = (
                f"HTTP/1.1 {status} {REASONS[status]}\r\nContent-Type: {content_type}\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
            )
            writer.write(headers.encode("latin-1") + (b"" if method == "HEAD" else body))
            await writer.drain()
        except (ConnectionError, OSError):
            pass  # the client went away
        except Exception:
            logger.exception("Bridge HTTP request failed")
        finally:
            writer.close()


def _json(data: dict[str, Any]) -> bytes:
    return json.dumps(data).encode()
