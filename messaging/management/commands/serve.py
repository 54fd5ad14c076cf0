import logging
import time
from typing import Any

from autobahn.websocket.protocol import WebSocketProtocol
from daphne.cli import CommandLineInterface
from daphne.server import Server
from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser
from twisted.internet import defer, reactor, task

logger = logging.getLogger(__name__)

GOING_AWAY = 1001
# How long a shutdown waits for clients to answer the close handshake.
CLOSE_GRACE_SECONDS = 3.0


class ChatServer(Server):
    """Daphne, with WebSocket closes that tell the client why.

    On SIGTERM every open socket is closed with 1001 (going away), so clients
    reconnect (to another process) and `sync`; the consumers' disconnect
    handlers run before the applications are stopped.
    """

    def run(self) -> None:
        reactor.callWhenRunning(self._tune_websockets)
        super().run()

    def _tune_websockets(self) -> None:
        # Send a close frame with the reason (1009 for an oversize frame)
        # instead of dropping the TCP connection, so clients can react.
        self.ws_factory.setProtocolOptions(failByDrop=False)

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


class Command(BaseCommand):
    help = "Serve HTTP and WebSockets with daphne, with the chat's frame size limit."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8000)

    def handle(self, *args: Any, **options: Any) -> None:
        limit = str(settings.CHAT_MAX_FRAME_BYTES)
        ChatCommandLine().run(
            [
                "--bind", str(options["host"]),
                "--port", str(options["port"]),
                # The WebSocket library closes an oversize frame with 1009 itself,
                # before the frame is buffered whole.
                "--websocket-max-message-size", limit,
                "--websocket-max-frame-size", limit,
                "chat_project.asgi:application",
            ]
        )  # fmt: skip
