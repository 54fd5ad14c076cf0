import argparse
import asyncio
import logging
import os
import socket
import time
from typing import Any

from autobahn.websocket.protocol import WebSocketProtocol
from daphne.cli import CommandLineInterface
from daphne.server import Server
from daphne.ws_protocol import WebSocketProtocol as DaphneWebSocketProtocol
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from twisted.internet import defer, reactor, task
from twisted.python.failure import Failure

from chat_project.process_tuning import raise_open_file_limit, tune_loaded_server
from chat_project.web_processes import MULTIPROC_DIR, WebProcesses, listen
from core.logs import log_access, set_process_role

logger = logging.getLogger(__name__)

GOING_AWAY = 1001
TRY_AGAIN_LATER = 1013
# How long a shutdown waits for clients to answer the close handshake.
CLOSE_GRACE_SECONDS = 3.0
# How long a WebSocket handshake may take before daphne drops it (its command
# line's default is 5 s). After a deploy every client reconnects at once and
# the last handshakes wait their turn for seconds; dropped, they would only
# come back and queue again.
HANDSHAKE_TIMEOUT_SECONDS = 20
# How long a socket closed with 1013 keeps its TCP connection, so that a client
# that reads again gets the frames already queued and the close frame after them.
OVERFLOW_DRAIN_SECONDS = 10.0
# A burst (sync) waits for the client to take its earlier frames; a client that
# takes nothing for this long cannot keep up and is closed with 1013.
STALLED_SECONDS = 10.0
# Frames received but not yet taken by the application, past which a socket is
# not read until it has taken half of them: a client sending faster than it is
# served is slowed down by TCP instead of growing this process's memory.
MAX_QUEUED_FRAMES = 64
READ_RESUME_CHECK_SECONDS = 0.01
# The ASGI scope extension through which the consumer paces a burst.
OUTGOING_EXTENSION = "chat.outgoing"


def unsent_bytes(transport: Any) -> int:
    """Return the bytes a Twisted transport holds that the kernel has not taken yet."""
    # A TLS transport wraps the TCP one, which holds the buffer.
    while transport is not None and not hasattr(transport, "_tempDataLen"):
        transport = getattr(transport, "transport", None)
    if transport is None:
        return 0
    return len(transport.dataBuffer) - transport.offset + transport._tempDataLen


class ChatWebSocketProtocol(DaphneWebSocketProtocol):
    """Daphne's WebSocket protocol with a cap on the bytes queued for a client.

    Twisted buffers whatever the kernel does not take, without bound. A frame
    that would take that buffer past CHAT_WS_MAX_OUTGOING_BYTES is not
    written: the socket is closed with 1013 and the client recovers by `sync`.
    """

    overflowed = False
    reading_paused = False

    def onMessage(self, payload: bytes, isBinary: bool) -> None:
        """Pass a frame on; stop reading while the application has a backlog of frames to take."""
        super().onMessage(payload, isBinary)
        queue = getattr(self, "application_queue", None)
        if queue is not None and not self.reading_paused and queue.qsize() >= MAX_QUEUED_FRAMES:
            # The client's next frames wait in TCP (it sees its sends slow down),
            # not in this process's memory.
            self.reading_paused = True
            self.transport.pauseProducing()
            reactor.callLater(READ_RESUME_CHECK_SECONDS, self._resume_reading_when_drained)  # type: ignore[arg-type]

    # The `type: ignore`s on callLater: twisted declares it on a zope
    # interface (no `self`), which mypy reads one argument off.
    def _resume_reading_when_drained(self) -> None:
        if self.state != WebSocketProtocol.STATE_OPEN:
            return
        if self.application_queue.qsize() > MAX_QUEUED_FRAMES // 2:
            reactor.callLater(READ_RESUME_CHECK_SECONDS, self._resume_reading_when_drained)  # type: ignore[arg-type]
            return
        self.reading_paused = False
        self.transport.resumeProducing()

    def serverClose(self, code: int | None = None) -> None:
        """Close as the application asks, with any code: autobahn's sendClose refuses the protocol's own (1008)."""
        self.sendCloseFrame(code=1000 if code is None else code, isReply=False)

    def outgoing_bytes(self) -> int:
        """Return the bytes written to this socket that the kernel has not taken yet."""
        return unsent_bytes(self.transport)

    def serverSend(self, content: str | bytes, binary: bool = False) -> None:
        """Send a frame, or close with 1013 if it would take the unsent bytes past the cap."""
        if self.overflowed:
            return
        unsent = self.outgoing_bytes()
        # An empty buffer takes any frame: the cap bounds a backlog, not a frame.
        size = len(content) if isinstance(content, bytes) else len(content.encode())
        if unsent and unsent + size > settings.CHAT_WS_MAX_OUTGOING_BYTES:
            self.close_for_overflow()
            return
        super().serverSend(content, binary)

    async def wait_for_room(self) -> None:
        """Wait until the unsent bytes are below a quarter of the cap (pacing a burst).

        A quarter leaves room for the next frame and for live frames after the
        burst. A client that takes nothing for STALLED_SECONDS is closed with 1013.
        """
        room = settings.CHAT_WS_MAX_OUTGOING_BYTES // 4
        unsent = self.outgoing_bytes()
        deadline = time.monotonic() + STALLED_SECONDS
        delay = 0.0
        while unsent > room and self.state == WebSocketProtocol.STATE_OPEN:
            if time.monotonic() >= deadline:
                self.close_for_overflow()
                return
            await asyncio.sleep(delay)
            # The reactor writes on the next loop turns; back off only for a client that is behind.
            delay = min(delay * 2 or 0.001, 0.02)
            now_unsent = self.outgoing_bytes()
            if now_unsent < unsent:
                deadline = time.monotonic() + STALLED_SECONDS
            unsent = now_unsent

    def close_for_overflow(self) -> None:
        """Close with 1013 (try again later): the client does not read what it is sent."""
        if self.overflowed or self.state != WebSocketProtocol.STATE_OPEN:
            return
        self.overflowed = True
        logger.warning(
            "WebSocket %s is not reading: %d bytes unsent; closing it with %d",
            self.client_addr,
            self.outgoing_bytes(),
            TRY_AGAIN_LATER,
        )
        # Tell the application now, not when TCP closes: its disconnect leaves the
        # groups and presence, so nothing more is routed here. Muted, daphne
        # neither passes on later frames nor sends a second disconnect.
        self.muted = True
        self.server.protocol_disconnected(self)
        if hasattr(self, "application_queue"):
            self.application_queue.put_nowait({"type": "websocket.disconnect", "code": TRY_AGAIN_LATER})
        # The close frame queues behind what is buffered; autobahn drops the
        # connection if the client has not answered it in time.
        self.closeHandshakeTimeout = OVERFLOW_DRAIN_SECONDS
        self.sendCloseFrame(code=TRY_AGAIN_LATER, reasonUtf8=b"not reading; reconnect and sync", isReply=False)


class ChatServer(Server):
    """Daphne, with WebSocket closes that tell the client why.

    On SIGTERM every open socket is closed with 1001 (going away), so clients
    reconnect (to another process) and `sync`; the consumers' disconnect
    handlers run before the applications are stopped. A client that does not
    read is closed with 1013 (see ChatWebSocketProtocol).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # daphne's access log goes to stdout unformatted, query strings (tokens) and all; log it instead.
        kwargs["action_logger"] = log_access
        super().__init__(*args, **kwargs)

    def run(self) -> None:
        tune_loaded_server()
        reactor.callWhenRunning(self._tune_websockets)
        # daphne's fd endpoint takes every socket for IPv4; adopt an inherited
        # listening socket with its own family instead.
        for endpoint in list(self.endpoints):
            if endpoint.startswith("fd:fileno="):
                self.endpoints.remove(endpoint)
                reactor.callWhenRunning(self._adopt_listening_socket, int(endpoint.removeprefix("fd:fileno=")))
        super().run()

    def _tune_websockets(self) -> None:
        # Send a close frame with the reason (1009 for an oversize frame)
        # instead of dropping the TCP connection, so clients can react.
        self.ws_factory.setProtocolOptions(failByDrop=False)
        self.ws_factory.protocol = ChatWebSocketProtocol

    def _adopt_listening_socket(self, fd: int) -> None:
        probe = socket.socket(fileno=fd)  # reads the family from the socket itself
        family = probe.family
        probe.detach()
        os.set_blocking(fd, False)
        try:
            port = reactor.adoptStreamPort(fd, family, self.http_factory)
        except Exception:
            self.listen_error(Failure())
            return
        os.close(fd)  # the port listens on a duplicate of its own
        self.listen_success(port)
        logger.info("Web process %d is accepting", os.getpid())

    def create_application(self, protocol: Any, scope: dict[str, Any]) -> Any:
        if isinstance(protocol, ChatWebSocketProtocol):
            extensions = {**scope.get("extensions", {}), OUTGOING_EXTENSION: {"wait_for_room": protocol.wait_for_room}}
            scope = {**scope, "extensions": extensions}
        return super().create_application(protocol, scope)

    def protocol_disconnected(self, protocol: Any) -> None:
        # A socket closed for overflow was disconnected early; its connection
        # entry may be gone by the time TCP closes.
        if protocol in self.connections:
            super().protocol_disconnected(protocol)

    def kill_all_applications(self) -> defer.Deferred:
        closing = defer.ensureDeferred(self._close_websockets())
        closing.addBoth(lambda _: super(ChatServer, self).kill_all_applications())
        return closing

    def _open_websockets(self) -> list[WebSocketProtocol]:
        return [
            p
            for p, details in self.connections.items()
            if isinstance(p, WebSocketProtocol)
            and p.state == WebSocketProtocol.STATE_OPEN
            and "disconnected" not in details
        ]

    async def _close_websockets(self) -> None:
        sockets = self._open_websockets()
        logger.info("Shutting down: closing %d WebSocket(s) with %d", len(sockets), GOING_AWAY)
        for protocol in sockets:
            protocol.sendCloseFrame(code=GOING_AWAY, reasonUtf8=b"server shutting down", isReply=False)
        deadline = time.monotonic() + CLOSE_GRACE_SECONDS
        while time.monotonic() < deadline and any(
            "disconnected" not in self.connections.get(p, {"disconnected": True}) for p in sockets
        ):
            await task.deferLater(reactor, 0.05)


class ChatCommandLine(CommandLineInterface):
    server_class = ChatServer


def serve(binding: list[str]) -> None:
    """Run daphne in this process on the given binding arguments, with the chat's limits."""
    limit = str(settings.CHAT_MAX_FRAME_BYTES)
    ChatCommandLine().run(
        [
            *binding,
            # The WebSocket library closes an oversize frame with 1009 itself,
            # before the frame is buffered whole.
            "--websocket-max-message-size", limit,
            "--websocket-max-frame-size", limit,
            "--websocket_connect_timeout", str(HANDSHAKE_TIMEOUT_SECONDS),
            "chat_project.asgi:application",
        ]
    )  # fmt: skip


class Command(BaseCommand):
    help = "Serve HTTP and WebSockets with daphne (WEB_PROCESSES processes on one port), with the chat's limits."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8000)
        parser.add_argument(
            "--processes", type=int, default=None, help="daphne processes (default: WEB_PROCESSES, one per core)"
        )
        # A child of the multi-process parent: serve on the listening socket it inherited.
        parser.add_argument("--fd", type=int, default=None, help=argparse.SUPPRESS)

    def handle(self, *args: Any, **options: Any) -> None:
        set_process_role("web")
        if options["fd"] is not None:
            serve(["--fd", str(options["fd"])])
            return
        processes = options["processes"] if options["processes"] is not None else settings.WEB_PROCESSES
        if processes < 1:
            raise CommandError("--processes must be at least 1.")
        raise_open_file_limit()
        try:
            sock = listen(str(options["host"]), options["port"])
        except OSError as exc:
            raise CommandError(f"Cannot listen on {options['host']}:{options['port']}: {exc}") from exc
        if processes == 1:
            # Its own registry holds every number (see chat_project/metrics.py); no files to sum.
            os.environ.pop(MULTIPROC_DIR, None)
            # On our socket, not one daphne binds: daphne's accept backlog is 50, and a
            # reconnect storm overflows it (clients then wait seconds to retry their SYN).
            serve(["--fd", str(sock.detach())])
            return
        WebProcesses(sock, processes).run()
