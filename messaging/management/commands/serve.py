from typing import Any

from daphne.cli import CommandLineInterface
from daphne.server import Server
from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser
from twisted.internet import reactor


class ChatServer(Server):
    """Daphne, with WebSocket closes that tell the client why."""

    def run(self) -> None:
        reactor.callWhenRunning(self._tune_websockets)
        super().run()

    def _tune_websockets(self) -> None:
        # Send a close frame with the reason (1009 for an oversize frame)
        # instead of dropping the TCP connection, so clients can react.
        self.ws_factory.setProtocolOptions(failByDrop=False)


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
