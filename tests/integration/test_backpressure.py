"""A socket that cannot keep up is closed with 1013 and recovers by `sync` (contract 5).

The stalled client has a tiny receive buffer and reads nothing after the
handshake, so the kernel buffers on both ends fill (megabytes on loopback)
and then the server's own queue for it reaches the cap. Messages near the
content limit get there in a few hundred sends.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import socket
import time
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest
import redis
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from tests.support.client import User, conversation, register, ws_url
from tests.support.stack import Proc, Stack, require_env

pytestmark = pytest.mark.integration

CAP = 128 * 1024
CONTENT_CHARS = 30_000
# Far more than the kernel buffers and the cap hold (and within one sync batch).
MAX_MESSAGES = 400
OVERFLOW_LOG = re.compile(r"is not reading: (\d+) bytes unsent; closing it with 1013")


@pytest.fixture
def backpressure_stack() -> Iterator[Stack]:
    stack = Stack.create(
        "backpressure",
        CHAT_WS_MAX_OUTGOING_BYTES=str(CAP),
        CHAT_MAX_CONTENT_CHARS=str(CONTENT_CHARS),
        CHAT_SEND_BURST="1000000",
        CHAT_SEND_RATE_PER_SECOND="1000000",
    )
    try:
        stack.start_bridge()
        yield stack
    finally:
        stack.stop()


async def open_stalled(user: User) -> ClientConnection:
    """Open a socket whose client takes almost nothing off the network until told to."""
    parts = urlsplit(user.base)
    sock = socket.socket()
    # Before connecting, so the window the client offers stays small.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1024)
    sock.connect((parts.hostname, parts.port))
    return await connect(
        ws_url(user.base),
        sock=sock,
        additional_headers={"Authorization": f"Token {user.token}"},
        max_size=None,
        max_queue=1,  # the library stops reading the transport after one unread frame
        ping_interval=None,  # a client that does not read would miss its own pongs
        open_timeout=15,
    )


async def drain(connection: ClientConnection) -> list[str]:
    """Read until the connection closes; return the ids of the messages it got."""
    ids: list[str] = []
    async with asyncio.timeout(60):
        with contextlib.suppress(ConnectionClosed):
            async for raw in connection:
                frame = json.loads(raw)
                if frame["type"] == "message.new":
                    ids.append(frame["message"]["id"])
    return ids


def overflow_unsent(web: Proc) -> int | None:
    """Return the unsent bytes the server reported when it closed a socket with 1013, if it did."""
    match = OVERFLOW_LOG.search(web.log_path.read_text(errors="replace"))
    return int(match.group(1)) if match else None


async def test_socket_that_does_not_read_is_closed_with_1013_and_recovers_by_sync(backpressure_stack: Stack):
    web, base = backpressure_stack.start_web()
    sender, slow, steady = register(base, "sender"), register(base, "slow"), register(base, "steady")
    group = conversation(sender, slow, steady, title="firehose")
    out, control = await sender.ws(), await steady.ws()
    stalled = await open_stalled(slow)
    presence = redis.Redis.from_url(require_env("REDIS_URL"))
    presence_key = f"{backpressure_stack.env()['REDIS_PREFIX']}:presence:{slow.id}"
    again = None
    sent: list[str] = []
    try:
        assert presence.zcard(presence_key) == 1
        while overflow_unsent(web) is None:
            assert len(sent) < MAX_MESSAGES, "the server never closed the socket that does not read"
            ack = await out.send_message(group["id"], f"{len(sent)} " + "x" * (CONTENT_CHARS - 10))
            sent.append(ack["message"]["id"])
        # The server's queue for the socket never grew past the cap.
        assert overflow_unsent(web) <= CAP
        # Reading again, the stalled client gets what was queued, then the close frame.
        draining = asyncio.create_task(drain(stalled))
        # The consumer's disconnect ran: the socket left presence (and its groups).
        deadline = time.monotonic() + 30
        while presence.zcard(presence_key):
            assert time.monotonic() < deadline, "the closed socket is still present"
            await asyncio.sleep(0.1)
        # Sent after the close: the stalled client cannot have these live.
        for i in range(3):
            sent.append((await out.send_message(group["id"], f"after the close {i}"))["message"]["id"])
        live = await draining
        assert stalled.close_code == 1013
        assert live == sent[: len(live)] and len(live) < len(sent) - 3

        # A client that reads got every message live, and was not closed.
        frames = await control.wait_for(lambda f: f.get("type") == "message.new", count=len(sent), timeout=120)
        assert [f["message"]["id"] for f in frames] == sent
        assert control.closed_code is None

        # The slow client reconnects and syncs: everything it did not confirm comes,
        # ten times the cap and more, at the pace it reads, without a close.
        again = await slow.ws()
        done = await again.request({"type": "sync"}, timeout=120)
        assert done["type"] == "sync.done" and done["count"] == len(sent) and done["more"] is False
        assert [f["message"]["id"] for f in again.of_type("message.new")] == sent
        assert again.closed_code is None
        pong = await again.request({"type": "ping"})
        assert pong["type"] == "pong"
    finally:
        for client in (out, control, again):
            if client is not None:
                await client.close()
        await stalled.close()
        presence.close()
