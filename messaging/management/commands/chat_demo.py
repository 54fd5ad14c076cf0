"""Two users chatting against a running server, step by step, as a client of the public API.

It uses nothing but the REST API and the WebSocket, like any client: register
ann and ben, get their tokens, ann starts a conversation with ben, both
connect and `sync`, ann sends, ben gets `message.new` live (through Kafka and
the bridge) and confirms with `message.received`, ann sees DELIVERED; ben
reads, ann sees READ. Every frame is printed as it goes over the wire.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from django.core.management.base import BaseCommand, CommandError, CommandParser
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidStatus

SHOWN_TOKEN_CHARS = 8


def short(frame: dict[str, Any]) -> str:
    """Render a frame or body as one line of JSON."""
    return json.dumps(frame, ensure_ascii=False)


class Demo:
    """One run of the demo against the server at `base`."""

    def __init__(self, base: str, timeout: float, content: str, write: Any) -> None:
        self.base = base.rstrip("/")
        parts = urlsplit(self.base)
        self.ws_url = f"{'wss' if parts.scheme == 'https' else 'ws'}://{parts.netloc}/ws/chat/"
        self.timeout = timeout
        self.content = content
        self.write = write
        self.step_number = 0

    def step(self, title: str) -> None:
        self.step_number += 1
        self.write(f"\n{self.step_number}. {title}")

    def rest(self, method: str, path: str, body: Any = None, token: str | None = None) -> Any:
        """Call the REST API; print the request and the answer; fail on an error status."""
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if token:
            headers["Authorization"] = f"Token {token}"
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.base + path, data=data, method=method, headers=headers)
        self.write(f"   {method} {path} {short(body) if body is not None else ''}".rstrip())
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                status, raw = response.status, response.read()
        except urllib.error.HTTPError as exc:
            raise CommandError(f"{method} {path} answered {exc.code}: {exc.read().decode(errors='replace')}") from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise CommandError(
                f"nothing answers at {self.base} ({reason}): start the system with `make run` "
                "(or pass --url with the server's address)"
            ) from None
        answer = json.loads(raw) if raw else None
        self.write(f"   -> {status} {short(answer) if answer is not None else ''}".rstrip())
        return answer

    async def send(self, who: str, ws: ClientConnection, frame: dict[str, Any]) -> None:
        self.write(f"   {who} -> {short(frame)}")
        await ws.send(json.dumps(frame))

    async def expect(
        self,
        who: str,
        ws: ClientConnection,
        frame_type: str,
        match: Callable[[dict[str, Any]], bool] = lambda frame: True,
        hint: str = "",
    ) -> dict[str, Any]:
        """Wait for the next frame of this type that `match` accepts; print it."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout
        while True:
            remaining = deadline - loop.time()
            try:
                if remaining <= 0:
                    raise TimeoutError
                frame = json.loads(await asyncio.wait_for(ws.recv(), remaining))
            except TimeoutError:
                raise CommandError(f"{who} got no {frame_type} within {self.timeout:g} s. {hint}".strip()) from None
            if frame.get("type") == "error":
                raise CommandError(f"{who} got an error frame: {short(frame)}")
            if frame.get("type") == frame_type and match(frame):
                self.write(f"   {who} <- {short(frame)}")
                return frame

    async def open_socket(self, who: str, token: str) -> ClientConnection:
        try:
            ws = await connect(self.ws_url, additional_headers={"Authorization": f"Token {token}"})
        except InvalidStatus as exc:
            raise CommandError(f"the WebSocket handshake for {who} was refused: {exc}") from None
        except OSError as exc:
            raise CommandError(f"cannot open {self.ws_url}: {exc}") from None
        self.write(f"   {who} connected to {self.ws_url} (header Authorization: Token {token[:SHOWN_TOKEN_CHARS]}...)")
        return ws

    async def run(self) -> None:
        suffix = secrets.token_hex(3)
        names = {"ann": f"ann-{suffix}", "ben": f"ben-{suffix}"}
        password = f"demo-{secrets.token_hex(8)}"
        self.write(f"Chat demo against {self.base}")

        self.step("Register two users (a fresh pair on every run)")
        ids = {
            who: self.rest("POST", "/api/auth/register/", {"username": n, "password": password})["id"]
            for who, n in names.items()
        }

        self.step("Log in: exchange each username and password for an API token")
        tokens = {
            who: self.rest("POST", "/api/auth/token/", {"username": n, "password": password})["token"]
            for who, n in names.items()
        }

        self.step(f"ann starts a conversation with ben (his id, {ids['ben']}, came from his registration)")
        conversation = self.rest("POST", "/api/conversations/", {"participantIds": [ids["ben"]]}, tokens["ann"])
        conversation_id = conversation["id"]

        self.step("Both connect the WebSocket and sync (what every client does after connecting)")
        ann = await self.open_socket("ann", tokens["ann"])
        ben = await self.open_socket("ben", tokens["ben"])
        try:
            for who, ws in (("ann", ann), ("ben", ben)):
                await self.send(who, ws, {"type": "sync", "requestId": f"sync-{who}"})
                await self.expect(who, ws, "sync.done", _answering(f"sync-{who}"))

            self.step("ann sends a message; the server acknowledges once it is stored")
            client_message_id = f"demo-{suffix}"
            await self.send(
                "ann",
                ann,
                {
                    "type": "message.send",
                    "conversationId": conversation_id,
                    "content": self.content,
                    "clientMessageId": client_message_id,
                    "requestId": "send-1",
                },
            )
            ack = await self.expect("ann", ann, "message.ack", lambda f: f.get("requestId") == "send-1")
            message = ack["message"]

            def about_message(status: str) -> Callable[[dict[str, Any]], bool]:
                # Ben's watermark moved over ann's message: everything of hers up to upToSeq has that status.
                return (
                    lambda f: f.get("userId") is not None
                    and f.get("status") == status
                    and (f.get("upToSeq", 0) >= message["seq"])
                )

            self.step("ben receives it live (outbox -> Kafka chat-messages -> bridge -> his socket)")
            await self.expect(
                "ben",
                ben,
                "message.new",
                lambda f: f.get("message", {}).get("id") == message["id"],
                "Is the bridge running (manage.py run_kafka_bridge)?",
            )

            self.step("ben's client confirms it holds everything up to that seq: message.received")
            await self.send(
                "ben", ben, {"type": "message.received", "conversationId": conversation_id, "upToSeq": message["seq"]}
            )

            self.step("ann sees ben's watermark move: DELIVERED (through Kafka message-status-events)")
            await self.expect("ann", ann, "message.status", about_message("DELIVERED"))

            self.step("ben reads the conversation; ann sees READ")
            await self.send(
                "ben", ben, {"type": "message.read", "conversationId": conversation_id, "upToSeq": message["seq"]}
            )
            await self.expect("ann", ann, "message.status", about_message("READ"))
        finally:
            await ann.close()
            await ben.close()

        self.write(
            f"\nDone: {names['ann']} and {names['ben']} chatted in conversation {conversation_id}.\n"
            f"Both can log in with the password {password!r}; their history: "
            f"GET {self.base}/api/conversations/{conversation_id}/messages/"
        )


class Command(BaseCommand):
    help = (
        "Show two new users chatting through a running server (make run): REST sign-up, a conversation, "
        "WebSocket delivery, and the DELIVERED and READ watermarks, printing every step."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--url", default="http://127.0.0.1:8000", help="The server (default: %(default)s).")
        parser.add_argument(
            "--timeout", type=float, default=20.0, help="Seconds to wait for each answer (default: %(default)s)."
        )
        parser.add_argument("--message", default="Hi Ben!", help="What ann says.")

    def handle(self, *args: Any, **options: Any) -> None:
        demo = Demo(options["url"], options["timeout"], options["message"], self.stdout.write)
        asyncio.run(demo.run())


def _answering(request_id: str) -> Callable[[dict[str, Any]], bool]:
    """Match the frame that answers the request with this id."""
    return lambda frame: frame.get("requestId") == request_id
