"""The Channels tutorial's chat room, speaking the chat's frames so that the same load client drives it.

A socket joins one group per conversation named in its `?rooms=` query (the
tutorial's room from the URL); `message.send` becomes a `group_send` to the
room, every other member gets `message.new` and the sender `message.ack`.
With BASELINE_INSERT the message is first written with one INSERT through
`database_sync_to_async`, as the tutorial would. Tokens are accepted but
not checked; `message.received` (either form) needs no answer and `sync` has
nothing to send.
"""

from __future__ import annotations

import json
import uuid
from collections import defaultdict
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings

from benchmarks.baseline.models import Message

# seq per conversation, counted in this process: gapless for a conversation whose senders all
# reach this process. The load clients start their watermark at the first seq they see, so
# that they send as many confirmation frames here as to the full path.
_last_seq: dict[str, int] = defaultdict(int)


def dumps(frame: dict[str, Any]) -> str:
    """Encode a frame as compact JSON, as the chat server does."""
    return json.dumps(frame, separators=(",", ":"), ensure_ascii=False)


@database_sync_to_async
def save_message(message: dict[str, Any], created_at: datetime) -> None:
    """Store the message: one INSERT."""
    Message.objects.create(
        id=message["id"],
        conversation_id=message["conversationId"],
        sender_id=message["senderId"],
        content=message["content"],
        client_message_id=message["clientMessageId"],
        created_at=created_at,
    )


class RoomConsumer(AsyncWebsocketConsumer):
    """One socket in the rooms of its conversations."""

    rooms: list[str]
    user_id: str

    async def connect(self) -> None:
        """Join the group of every room in the query string."""
        query = parse_qs(self.scope.get("query_string", b"").decode())
        self.user_id = query.get("user", ["0"])[0]
        self.rooms = [room for room in query.get("rooms", [""])[0].split(",") if room]
        for room in self.rooms:
            await self.channel_layer.group_add(f"room.{room}", self.channel_name)
        await self.accept()

    async def disconnect(self, code: int) -> None:
        """Leave the rooms."""
        for room in getattr(self, "rooms", []):
            await self.channel_layer.group_discard(f"room.{room}", self.channel_name)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        """Answer one frame."""
        frame = json.loads(text_data or bytes_data or b"{}")
        kind = frame.get("type")
        if kind == "message.send":
            await self.message_send(frame)
        elif kind == "sync":
            done = {"type": "sync.done", "requestId": frame.get("requestId"), "count": 0, "more": False}
            await self.send(dumps(done))
        elif kind == "ping":
            await self.send(dumps({"type": "pong", "requestId": frame.get("requestId")}))

    async def message_send(self, frame: dict[str, Any]) -> None:
        """Store (with BASELINE_INSERT), send to the room, acknowledge."""
        conversation_id = str(frame["conversationId"])
        _last_seq[conversation_id] += 1
        created_at = datetime.now(UTC)
        message = {
            "id": str(uuid.uuid4()),
            "conversationId": conversation_id,
            "senderId": self.user_id,
            "content": frame["content"],
            "seq": _last_seq[conversation_id],
            "clientMessageId": frame["clientMessageId"],
            "createdAt": created_at.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "status": "SENT",
        }
        if settings.BASELINE_INSERT:
            await save_message(message, created_at)
        await self.channel_layer.group_send(
            f"room.{conversation_id}", {"type": "chat.message", "message": message, "exclude": self.channel_name}
        )
        await self.send(
            dumps(
                {
                    "type": "message.ack",
                    "requestId": frame.get("requestId"),
                    "clientMessageId": message["clientMessageId"],
                    "message": message,
                }
            )
        )

    async def chat_message(self, event: dict[str, Any]) -> None:
        """Forward a room's message to this socket (not back to its sender)."""
        if event["exclude"] != self.channel_name:
            await self.send(dumps({"type": "message.new", "message": event["message"]}))
