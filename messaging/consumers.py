"""The chat WebSocket (`/ws/chat/`): frames in, frames out, nothing else.

Parsing and error mapping happen here; every decision is made by the
services and selectors this consumer calls. Frames for the user arrive from
the bridge through this process's fan-out (realtime.py), which calls
`send_text` unless the socket was sent that message already (`sent`,
repeats.py): its acks and its syncs' messages count too.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine
from datetime import datetime
from typing import Any

from channels.consumer import get_handler_name
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings
from django.utils import timezone

from core.db import db
from core.errors import DomainError, NotFound, error_frame
from core.parsing import BAD_TEXT_DETAIL, has_bad_text, json_may_hold_bad_text
from users.credentials import CREDENTIAL_ENDED_DETAIL, TOKEN_EXPIRED, credential_group

from . import changes, checks, pending, presence, ratelimit, redelivery, services
from .metrics import SEND_ACK_SECONDS, WS_CONNECTIONS
from .models import Message
from .realtime import encode_frame, local_sockets
from .repeats import SentSeqs
from .sending import overloaded, send_queue, watermark_queue
from .wire import message_wire

logger = logging.getLogger(__name__)

# How many of one socket's requests (sends waiting for their ack, confirmations
# being recorded) may be under way at once; past it the socket reads no
# further frame until one is done.
MAX_IN_FLIGHT = 64
# The close code of a socket over the per-user cap.
POLICY_VIOLATION = 1008


class FrameError(DomainError):
    """A frame refused as a whole: not a JSON object with a string `type`, or holding unstorable text."""

    def __init__(self, code: str, detail: str, request_id: str | int | None = None) -> None:
        self.code = code
        self.request_id = request_id
        super().__init__(detail)


def parse_frame(raw: str | bytes) -> dict[str, Any]:
    """Decode a client frame, or raise FrameError with the contract's code."""
    try:
        frame = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        raise FrameError("invalid_json", "The frame is not valid JSON.") from None
    if json_may_hold_bad_text(raw) and has_bad_text(frame):
        # Checked once, here, for every field: nothing after this sees such a string.
        request_id = request_id_of(frame) if isinstance(frame, dict) else None
        raise FrameError("validation_error", BAD_TEXT_DETAIL, None if has_bad_text(request_id) else request_id)
    if not isinstance(frame, dict) or not isinstance(frame.get("type"), str):
        raise FrameError("invalid_frame", "A frame is a JSON object with a string 'type'.")
    return frame


def request_id_of(frame: dict[str, Any]) -> str | int | None:
    """Return the frame's requestId when it is one a client can match (string or number)."""
    value = frame.get("requestId")
    return value if isinstance(value, str | int) and not isinstance(value, bool) else None


class ChatConsumer(AsyncWebsocketConsumer):
    """One client socket of one authenticated user."""

    user: Any
    typing_on: set[str]
    # The messages this socket was sent (live, by sync, in acks): the fan-out sends it no repeats.
    sent: SentSeqs
    in_flight: set[asyncio.Task[None]]
    confirming: set[asyncio.Task[None]]
    # Whether this socket is counted in chat_ws_connections.
    counted = False
    # The token or session key it was opened with, and the timer that closes it when the token expires.
    credential: str | None = None
    expiry: asyncio.Task[None] | None = None

    ### Connection ###

    async def connect(self) -> None:
        """Accept authenticated users only (closing before accept answers HTTP 403), up to the per-user cap."""
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close()
            return
        if not await presence.socket_opened(user.pk, self.channel_name):
            # Over CHAT_MAX_SOCKETS_PER_USER: the contract closes the new socket with 1008.
            await self.accept()
            await self.close(code=POLICY_VIOLATION)
            return
        self.user = user
        self.typing_on = set()
        self.sent = SentSeqs()
        self.in_flight = set()
        self.confirming = set()
        await local_sockets().add(user.pk, self)
        redelivery.watch()
        await self._follow_credential()
        await self.accept()
        WS_CONNECTIONS.inc()
        self.counted = True

    async def _follow_credential(self) -> None:
        """Close this socket when its token or session ends (users/credentials.py)."""
        self.credential = self.scope.get("credential")
        if self.credential:
            await self.channel_layer.group_add(credential_group(self.credential), self.channel_name)
        if expires_at := self.scope.get("credential_expires_at"):
            self.expiry = asyncio.create_task(self._close_at(expires_at))

    async def _close_at(self, expires_at: datetime) -> None:
        await asyncio.sleep(max((expires_at - timezone.now()).total_seconds(), 0))
        await self.credential_ended({"reason": TOKEN_EXPIRED})

    async def disconnect(self, code: int) -> None:
        """Leave the user's group and stop any typing indicator this socket left on."""
        if self.counted:
            WS_CONNECTIONS.dec()
            self.counted = False
        if not hasattr(self, "user"):
            return
        for task in self.in_flight:
            task.cancel()  # nobody to answer; what was already stored stays stored
        local_sockets().remove(self.user.pk, self)
        if self.credential:
            await self.channel_layer.group_discard(credential_group(self.credential), self.channel_name)
        if self.expiry is not None:
            self.expiry.cancel()
        await presence.socket_closed(self.user.pk, self.channel_name)
        for conversation_id in list(self.typing_on):
            try:
                await self._publish_typing(conversation_id, False)
            except Exception:
                logger.exception(
                    "Could not clear typing for %s", conversation_id, extra={"conversationId": conversation_id}
                )

    ### Frames from the client ###

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        """Parse one frame and dispatch it; every failure becomes an `error` frame."""
        # Frames over CHAT_MAX_FRAME_BYTES never get here: the server closes them with 1009.
        if not hasattr(self, "user"):
            return  # a socket refused over the cap, closing: its frames go unread
        raw: str | bytes = text_data if text_data is not None else (bytes_data or b"")
        request_id = None
        try:
            frame = parse_frame(raw)
            request_id = request_id_of(frame)
            action = self.frame_actions.get(frame["type"])
            if action is None:
                raise FrameError("unknown_type", f"Unknown frame type {frame['type'][:50]!r}.")
            await action(self, frame, request_id)
        except FrameError as exc:
            await self._send_error(exc, exc.request_id if request_id is None else request_id)
        except Exception as exc:
            await self._send_error(exc, request_id)

    async def _send_error(self, exc: Exception, request_id: Any) -> None:
        """Answer a failed request with an `error` frame; anything unexpected is logged, never shown."""
        if isinstance(exc, DomainError):
            await self.send_frame(error_frame(exc.code, exc.detail, request_id, **exc.frame_fields()))
            return
        logger.error("Frame from user %s failed", self.user.pk, exc_info=exc)
        await self.send_frame(error_frame("server_error", "Internal error; it has been logged.", request_id))

    async def on_message_send(self, frame: dict[str, Any], request_id: Any) -> None:
        arrived = time.perf_counter()
        if len(self.in_flight) >= MAX_IN_FLIGHT - 1:
            # Refused at once rather than left unread: a send that waits in the socket's buffer
            # behind others pushes nobody back, and its ack would come ever later.
            raise overloaded()
        await ratelimit.send_check(self.user.pk)
        conversation_id = checks.check_conversation_id(frame.get("conversationId"))
        draft = checks.check_message(
            sender=self.user,
            content=frame.get("content"),
            client_message_id=frame.get("clientMessageId"),
            origin_channel=self.channel_name,
        )
        # Stored in the order sent (with other sends to the conversation); this socket's
        # next frames are read meanwhile.
        await self._under_way(self._ack_when_stored(send_queue().submit(conversation_id, draft), request_id, arrived))

    async def _under_way(self, request: Coroutine[Any, Any, None], *, confirmation: bool = False) -> None:
        """Run a request without holding up this socket's next frames (up to MAX_IN_FLIGHT at once).

        Frames pushed to the socket wait while it handles a frame, so a
        database round trip here would delay every message.new behind it.
        """
        task = asyncio.create_task(request)
        self.in_flight.add(task)
        task.add_done_callback(self.in_flight.discard)
        if confirmation:
            self.confirming.add(task)
            task.add_done_callback(self.confirming.discard)
        if len(self.in_flight) >= MAX_IN_FLIGHT:
            await asyncio.wait(self.in_flight, return_when=asyncio.FIRST_COMPLETED)

    async def _ack_when_stored(
        self, stored: asyncio.Future[services.SendOutcome], request_id: Any, arrived: float
    ) -> None:
        try:
            outcome = await stored
            if isinstance(outcome, DomainError):
                raise outcome
            message, _created = outcome
            await self._ack(message, request_id)
            SEND_ACK_SECONDS.observe(time.perf_counter() - arrived)
        except Exception as exc:
            await self._send_error(exc, request_id)

    async def on_message_edit(self, frame: dict[str, Any], request_id: Any) -> None:
        await ratelimit.send_check(self.user.pk)
        change = functools.partial(
            changes.message_edit,
            sender=self.user,
            message_id=checks.check_message_id(frame.get("messageId")),
            content=frame.get("content"),
            client_message_id=frame.get("clientMessageId"),
        )
        await self._under_way(self._ack_change(change, request_id))

    async def on_message_delete(self, frame: dict[str, Any], request_id: Any) -> None:
        await ratelimit.send_check(self.user.pk)
        change = functools.partial(
            changes.message_delete,
            actor=self.user,
            message_id=checks.check_message_id(frame.get("messageId")),
            client_message_id=checks.check_client_message_id(frame.get("clientMessageId")),
        )
        await self._under_way(self._ack_change(change, request_id))

    async def _ack_change(self, change: Callable[[], tuple[Message, bool]], request_id: Any) -> None:
        # Stored beside the socket's next frames, like a send: its transaction never holds up frames pushed here.
        try:
            message, _created = await db(change)()
            await self._ack(message, request_id)
        except Exception as exc:
            await self._send_error(exc, request_id)

    async def _ack(self, message: Message, request_id: Any) -> None:
        # The client holds its own message from the ack: a copy from the bridge or redelivery is a repeat.
        self.sent.first(str(message.conversation_id), message.seq)
        await self.send_frame(
            {
                "type": "message.ack",
                "requestId": request_id,
                "clientMessageId": message.client_message_id,
                "message": message_wire(message),
            }
        )

    async def on_message_received(self, frame: dict[str, Any], request_id: Any) -> None:
        if "messageIds" in frame and "upToSeq" not in frame:
            request = self._confirm_ids(frame.get("messageIds"), request_id)
        else:
            confirmation = services.Confirmation(
                user_id=self.user.pk,
                conversation_id=checks.check_conversation_id(frame.get("conversationId")),
                delivered=checks.check_up_to_seq(frame.get("upToSeq"), minimum=1),
            )
            # Its client holds these: copies on their way are repeats (repeats.py).
            self.sent.confirmed(str(confirmation.conversation_id), confirmation.delivered)
            request = self._confirm(confirmation, request_id)
        await self._under_way(request, confirmation=True)

    async def on_message_read(self, frame: dict[str, Any], request_id: Any) -> None:
        confirmation = services.Confirmation(
            user_id=self.user.pk,
            conversation_id=checks.check_conversation_id(frame.get("conversationId")),
            read=checks.check_up_to_seq(frame.get("upToSeq")),
        )
        await self._under_way(self._confirm(confirmation, request_id), confirmation=True)

    async def _confirm(self, confirmation: services.Confirmation, request_id: Any) -> None:
        # Recorded beside the socket's next frames, in one transaction with other sockets' confirmations.
        try:
            if await watermark_queue().advance(confirmation) is None:
                raise NotFound()
        except Exception as exc:
            await self._send_error(exc, request_id)

    async def _confirm_ids(self, message_ids: Any, request_id: Any) -> None:
        # The v1 form: ids become watermarks over the longest contiguous run they cover.
        try:
            ids = checks.check_received_ids(message_ids)
            confirmations = await db(services.confirmations_from_ids)(user_id=self.user.pk, message_ids=ids)
            for confirmation in confirmations:
                await watermark_queue().advance(confirmation)
        except Exception as exc:
            await self._send_error(exc, request_id)

    async def on_sync(self, frame: dict[str, Any], request_id: Any) -> None:
        limit = checks.check_sync_limit(frame.get("limit", settings.CHAT_SYNC_BATCH_MAX))
        await ratelimit.sync_check(self.user.pk)
        if self.confirming:
            # What this socket confirmed before asking must not come again.
            await asyncio.wait(self.confirming)
        messages, more, tails = await pending.messages_pending(self.user, limit)
        for message in messages:
            await self._wait_for_room()
            # Sent whether or not the socket got it already: the client asked for it.
            self.sent.first(message["conversationId"], message["seq"])
            await self.send_frame({"type": "message.new", "message": message})
        await self.send_frame(
            {"type": "sync.done", "requestId": request_id, "count": len(messages), "more": more, "conversations": tails}
        )

    async def _wait_for_room(self) -> None:
        # A batch can be larger than the server's cap on unsent bytes (1013 for a
        # client that does not read): send it at the pace the client reads. The
        # server (chat_project/management/commands/serve.py) offers the wait as a scope extension.
        wait = self.scope.get("extensions", {}).get("chat.outgoing", {}).get("wait_for_room")
        if wait is not None:
            await wait()

    async def on_typing(self, frame: dict[str, Any], request_id: Any) -> None:
        is_typing = checks.check_is_typing(frame.get("isTyping"))
        conversation_id = str(checks.check_conversation_id(frame.get("conversationId")))
        if not await ratelimit.typing_check(self.user.pk, conversation_id, is_typing):
            return  # the others already see this user typing
        await self._publish_typing(conversation_id, is_typing)

    async def _publish_typing(self, conversation_id: str, is_typing: bool) -> None:
        event = await db(services.typing_send)(user=self.user, conversation_id=conversation_id, is_typing=is_typing)
        if is_typing:
            self.typing_on.add(event.conversation_id)
        else:
            self.typing_on.discard(event.conversation_id)

    async def on_ping(self, frame: dict[str, Any], request_id: Any) -> None:
        await self.send_frame({"type": "pong", "requestId": request_id})

    # What each client frame type does ("handler" names the bridge's Kafka record handlers).
    frame_actions: dict[str, Callable[[ChatConsumer, dict[str, Any], Any], Awaitable[None]]] = {
        "message.send": on_message_send,
        "message.edit": on_message_edit,
        "message.delete": on_message_delete,
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

    async def credential_ended(self, event: dict[str, Any]) -> None:
        """The token or session this socket was opened with ended: say why in an `error` frame, then close."""
        reason = event["reason"]
        await self.send_frame(error_frame(reason, CREDENTIAL_ENDED_DETAIL[reason]))
        await self.close(code=POLICY_VIOLATION, reason=reason)

    async def send_frame(self, frame: dict[str, Any]) -> None:
        """Send one JSON frame."""
        await self.send_text(encode_frame(frame))

    async def send_text(self, text: str) -> None:
        """Send one frame serialized already (pushed frames are serialized once for all sockets)."""
        await self.send(text_data=text)
