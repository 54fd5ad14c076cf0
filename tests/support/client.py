"""Clients of the real system: REST over requests, WebSocket over `websockets`."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import requests
from websockets.asyncio.client import ClientConnection, connect


@dataclass
class User:
    id: str
    username: str
    token: str
    base: str

    def api(self, method: str, path: str, body: Any = None, **params: Any) -> requests.Response:
        return requests.request(
            method,
            f"{self.base}{path}",
            json=body,
            params=params or None,
            headers={"Authorization": f"Token {self.token}"},
            timeout=15,
        )

    async def ws(self, **kwargs: Any) -> Socket:
        return await Socket.open(self.base, self.token, **kwargs)


def register(base: str, prefix: str = "user") -> User:
    """Register a new user with a unique name and get its token."""
    username = f"{prefix}-{uuid.uuid4().hex[:10]}"
    password = f"pw-{uuid.uuid4().hex}"
    response = requests.post(
        f"{base}/api/auth/register/", json={"username": username, "password": password}, timeout=15
    )
    assert response.status_code == 201, response.text
    user_id = response.json()["id"]
    response = requests.post(f"{base}/api/auth/token/", json={"username": username, "password": password}, timeout=15)
    assert response.status_code == 200, response.text
    return User(id=user_id, username=username, token=response.json()["token"], base=base)


def conversation(owner: User, *others: User, title: str = "") -> dict[str, Any]:
    response = owner.api("POST", "/api/conversations/", {"participantIds": [o.id for o in others], "title": title})
    assert response.status_code in (200, 201), response.text
    return response.json()


def ws_url(base: str) -> str:
    return base.replace("http://", "ws://") + "/ws/chat/"


@dataclass
class Socket:
    """A WebSocket client that keeps every frame it receives, for tests to search."""

    conn: ClientConnection
    frames: list[dict[str, Any]] = field(default_factory=list)
    _reader: asyncio.Task | None = None
    _arrived: asyncio.Event = field(default_factory=asyncio.Event)
    closed_code: int | None = None

    @classmethod
    async def open(
        cls, base: str, token: str | None, *, headers: dict[str, str] | None = None, query: str = ""
    ) -> Socket:
        all_headers = dict(headers or {})
        if token is not None and not query:
            all_headers.setdefault("Authorization", f"Token {token}")
        conn = await connect(ws_url(base) + query, additional_headers=all_headers, max_size=None, open_timeout=15)
        socket = cls(conn)
        socket._reader = asyncio.create_task(socket._read())
        return socket

    async def _read(self) -> None:
        try:
            async for raw in self.conn:
                self.frames.append(json.loads(raw))
                self._arrived.set()
        except Exception:
            pass
        finally:
            self.closed_code = self.conn.close_code
            self._arrived.set()

    async def send(self, frame: dict[str, Any] | str | bytes) -> None:
        await self.conn.send(frame if isinstance(frame, str | bytes) else json.dumps(frame))

    async def wait_for(
        self, predicate: Callable[[dict[str, Any]], bool], timeout: float = 20.0, count: int = 1
    ) -> list[dict[str, Any]]:
        """Wait until `count` received frames match; return them."""
        deadline = time.monotonic() + timeout
        while True:
            matched = [f for f in self.frames if predicate(f)]
            if len(matched) >= count:
                return matched[:count] if count == 1 else matched
            remaining = deadline - time.monotonic()
            if remaining <= 0 or (self._reader is not None and self._reader.done()):
                raise AssertionError(
                    f"wanted {count} matching frames, got {len(matched)}; last frames: {self.frames[-5:]}"
                )
            self._arrived.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._arrived.wait(), remaining)

    async def wait_type(self, frame_type: str, timeout: float = 20.0, **fields: Any) -> dict[str, Any]:
        (frame,) = await self.wait_for(
            lambda f: f.get("type") == frame_type and all(f.get(k) == v for k, v in fields.items()), timeout
        )
        return frame

    async def request(self, frame: dict[str, Any], timeout: float = 20.0) -> dict[str, Any]:
        """Send a frame with a fresh requestId and return the reply that carries it."""
        request_id = uuid.uuid4().hex
        await self.send({**frame, "requestId": request_id})
        (reply,) = await self.wait_for(lambda f: f.get("requestId") == request_id, timeout)
        return reply

    async def send_message(self, conversation_id: str, content: str, client_message_id: str | None = None) -> dict:
        reply = await self.request(
            {
                "type": "message.send",
                "conversationId": conversation_id,
                "content": content,
                "clientMessageId": client_message_id or uuid.uuid4().hex,
            }
        )
        assert reply["type"] == "message.ack", reply
        return reply

    def of_type(self, frame_type: str) -> list[dict[str, Any]]:
        return [f for f in self.frames if f.get("type") == frame_type]

    async def wait_closed(self, timeout: float = 10.0) -> int | None:
        if self._reader is not None:
            await asyncio.wait_for(asyncio.shield(self._reader), timeout)
        return self.closed_code

    async def close(self) -> None:
        await self.conn.close()
        if self._reader is not None:
            await asyncio.gather(self._reader, return_exceptions=True)


@dataclass
class Watermarks:
    """What a client holds of each conversation, and how far its contiguous run from seq 1 reaches (PROTOCOL.md §6)."""

    held: dict[str, set[int]] = field(default_factory=dict)
    marks: dict[str, int] = field(default_factory=dict)
    confirmed: dict[str, int] = field(default_factory=dict)

    def add(self, message: dict[str, Any]) -> None:
        """Keep a message (from live, sync or an ack) and move its conversation's run over it and what follows."""
        conversation_id = message["conversationId"]
        held = self.held.setdefault(conversation_id, set())
        held.add(message["seq"])
        mark = self.marks.get(conversation_id, 0)
        while mark + 1 in held:
            mark += 1
            held.discard(mark)
        self.marks[conversation_id] = mark

    def moves(self) -> list[dict[str, Any]]:
        """Return a `message.received` frame for each conversation whose run moved since the last call."""
        frames = []
        for conversation_id, mark in self.marks.items():
            if mark > self.confirmed.get(conversation_id, 0):
                frames.append({"type": "message.received", "conversationId": conversation_id, "upToSeq": mark})
                self.confirmed[conversation_id] = mark
        return frames
