"""The chat WebSocket (`/ws/chat/`): frames in, frames out, nothing else.

Parsing and error mapping happen here; every decision is made by the
services and selectors this consumer calls. Frames for the user arrive from
the bridge through the channel layer as `chat.frame` events.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from channels.consumer import get_handler_name
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings

from chat_project.db import db
from chat_project.errors import DomainError, RateLimited, ValidationFailed, error_frame
from kafka_bridge.clients import publish_ephemeral
from kafka_bridge.topics import TYPING_EVENTS

from . import presence, selectors, services
from .ratelimit import TokenBucket
from .realtime import user_group
from .sending import send_queue
from .wire import message_wire

logger = logging.getLogger(__name__)


class FrameError(DomainError):
    """A frame that is not a JSON object with a string `type`."""

    def __init__(self, code: str, detail: str) -> None:
        self.code = code
        super().__init__(detail)


def parse_frame(raw: str | bytes) -> dict[str, Any]:
    """Decode a client frame, or raise FrameError with the contract's code."""
    try:
        frame = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        raise FrameError("invalid_json", "The frame is not valid JSON.") from None
    if not isinstance(frame, dict) or not isinstance(frame.get("type"), str):
        raise FrameError("invalid_frame", "A frame is a JSON object with a string 'type'.")
    return frame


def request_id_of(frame: dict[str, Any]) -> str | int | None:
    """Return the frame's requestId when it is one a client can match (string or number)."""
    value = frame.get("requestId")
    return value if isinstance(value, str | int) and not isinstance(value, bool) else None


def require_bool(frame: dict[str, Any], name: str) -> bool:
    value = frame.get(name)
    if not isinstance(value, bool):
        raise ValidationFailed({name: "Must be true or false."})
    return value


class ChatConsumer(AsyncWebsocketConsumer):
    """One client socket of one authenticated user."""

    user: Any
    heartbeat: asyncio.Task
    send_bucket: TokenBucket
    typing_sent_at: dict[str, float]

    ### Connection ###

    async def connect(self) -> None:
        """Accept authenticated users only (closing before accept answers HTTP 403)."""
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close()
            return
        self.user = user
        self.send_bucket = TokenBucket(settings.CHAT_SEND_BURST, settings.CHAT_SEND_RATE_PER_SECOND)
        self.typing_sent_at = {}
        await self.channel_layer.group_add(user_group(user.pk), self.channel_name)
        await presence.presence_mark(user.pk, self.channel_name)
        self.heartbeat = asyncio.create_task(self._heartbeat())
        await self.accept()

    async def disconnect(self, code: int) -> None:
        """Leave the user's group and stop any typing indicator this socket left on."""
        if not hasattr(self, "user"):
            return
        self.heartbeat.cancel()
        await self.channel_layer.group_discard(user_group(self.user.pk), self.channel_name)
        await presence.presence_clear(self.user.pk, self.channel_name)
        for conversation_id in list(self.typing_sent_at):
            try:
                await self._publish_typing(conversation_id, False)
            except Exception:
                logger.exception("Could not clear typing for %s", conversation_id)

    async def _heartbeat(self) -> None:
        while True:
            await asyncio.sleep(presence.heartbeat_seconds())
            try:
                await presence.presence_mark(self.user.pk, self.channel_name)
            except Exception:  # Redis away for a moment: the next beat retries
                logger.warning("Presence heartbeat failed for user %s", self.user.pk, exc_info=True)

    ### Frames from the client ###

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        """Parse one frame and dispatch it; every failure becomes an `error` frame."""
        # Frames over CHAT_MAX_FRAME_BYTES never get here: the server closes them with 1009.
        raw: str | bytes = text_data if text_data is not None else (bytes_data or b"")
        request_id = None
        try:
            frame = parse_frame(raw)
            request_id = request_id_of(frame)
            handler = self.handlers.get(frame["type"])
            if handler is None:
                raise FrameError("unknown_type", f"Unknown frame type {frame['type'][:50]!r}.")
            await handler(self, frame, request_id)
        except DomainError as exc:
            await self.send_frame(error_frame(exc.code, exc.detail, request_id, **exc.frame_fields()))
        except Exception:
            logger.exception("Frame from user %s failed", self.user.pk)
            await self.send_frame(error_frame("server_error", "Internal error; it has been logged.", request_id))

    async def on_message_send(self, frame: dict[str, Any], request_id: Any) -> None:
        if not self.send_bucket.take():
            raise RateLimited(retry_after_seconds=self.send_bucket.seconds_until_next())
        conversation_id = services.parse_conversation_id(frame.get("conversationId"))
        draft = services.check_message(
            sender=self.user,
            content=frame.get("content"),
            client_message_id=frame.get("clientMessageId"),
            origin_channel=self.channel_name,
        )
        outcome = await send_queue().send(conversation_id, draft)
        if isinstance(outcome, DomainError):
            raise outcome
        message, _created = outcome
        await self.send_frame(
            {
                "type": "message.ack",
                "requestId": request_id,
                "clientMessageId": message.client_message_id,
                "message": message_wire(message),
            }
        )

    async def on_message_received(self, frame: dict[str, Any], request_id: Any) -> None:
        await db(services.messages_mark_received)(user=self.user, message_ids=frame.get("messageIds"))

    async def on_message_read(self, frame: dict[str, Any], request_id: Any) -> None:
        await db(services.conversation_mark_read)(
            user=self.user, conversation_id=frame.get("conversationId"), up_to_seq=frame.get("upToSeq")
        )

    async def on_sync(self, frame: dict[str, Any], request_id: Any) -> None:
        limit = frame.get("limit", settings.CHAT_SYNC_BATCH_MAX)
        if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= settings.CHAT_SYNC_BATCH_MAX:
            raise ValidationFailed({"limit": f"Must be 1 to {settings.CHAT_SYNC_BATCH_MAX}."})
        messages, more = await db(selectors.messages_pending_for_user)(user=self.user, limit=limit)
        for message in messages:
            await self.send_frame({"type": "message.new", "message": message_wire(message)})
        await self.send_frame({"type": "sync.done", "requestId": request_id, "count": len(messages), "more": more})

    async def on_typing(self, frame: dict[str, Any], request_id: Any) -> None:
        is_typing = require_bool(frame, "isTyping")
        conversation_id = str(services.parse_conversation_id(frame.get("conversationId")))
        if is_typing:
            last = self.typing_sent_at.get(conversation_id)
            if last is not None and time.monotonic() - last < settings.CHAT_TYPING_INTERVAL_SECONDS:
                return  # throttled: the others already see this user typing
        await self._publish_typing(conversation_id, is_typing)

    async def _publish_typing(self, conversation_id: str, is_typing: bool) -> None:
        event = await db(services.typing_event)(user=self.user, conversation_id=conversation_id, is_typing=is_typing)
        publish_ephemeral(TYPING_EVENTS, event)
        if is_typing:
            self.typing_sent_at[event.conversation_id] = time.monotonic()
        else:
            self.typing_sent_at.pop(event.conversation_id, None)

    async def on_ping(self, frame: dict[str, Any], request_id: Any) -> None:
        await self.send_frame({"type": "pong", "requestId": request_id})

    handlers: dict[str, Callable[[ChatConsumer, dict[str, Any], Any], Awaitable[None]]] = {
        "message.send": on_message_send,
        "message.received": on_message_received,
        "message.read": on_message_read,
        "sync": on_sync,
        "typing": on_typing,
        "ping": on_ping,
    }

    async def dispatch(self, message: dict[str, Any]) -> None:
        """Call the event's handler, without channels' per-event database clean-up.

        That clean-up runs on the process's one shared sync thread, so every
        frame pushed to an idle socket would wait behind other sockets'
        transactions; `db()` calls clean up their own connections.
        """
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']}")
        await handler(message)

    ### Frames to the client ###

    async def chat_frame(self, event: dict[str, Any]) -> None:
        """Forward a frame pushed to this user's group (see realtime.push_frame)."""
        if event.get("exclude") != self.channel_name:
            await self.send_frame(event["frame"])

    async def send_frame(self, frame: dict[str, Any]) -> None:
        """Send one JSON frame."""
        await self.send(text_data=json.dumps(frame, separators=(",", ":"), ensure_ascii=False))
