"""A burst of chat traffic that survives faults, and the checks that nothing was lost.

Senders send over real WebSockets and, like a real client, reconnect after a
close and resend an unacknowledged message with the same clientMessageId.
Receivers, like a real client, `sync` after every (re)connect, confirm what
they hold with `message.received`, and drop repeats by id. At the end every
receiver must hold every message, the database must hold each exactly once
with gapless seqs, and each sender's messages must have arrived live in
order. Holding every message is not enough, as `sync` alone would do it: after
recovery a fresh message must also reach every receiver live, as `message.new`
outside any sync, within a bound the scenario states.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tests.support.client import User, Watermarks, conversation, register, ws_url
from tests.support.stack import Stack

ACK_TIMEOUT = 60.0


async def open_socket(user: User) -> Any:
    """Connect, retrying while the web server is away."""
    while True:
        try:
            return await connect(
                ws_url(user.base), additional_headers={"Authorization": f"Token {user.token}"}, open_timeout=5
            )
        except (OSError, InvalidStatus, TimeoutError, ConnectionClosed):
            await asyncio.sleep(0.2)


@dataclass
class Throttle:
    """Paces the senders of a burst together: `rate` sends a second at most, none past `allowed` until raised.

    It keeps traffic flowing across a fault that takes a while, however long
    the fault takes on the machine at hand: the scenario lets the burst go on
    as far as the fault has got.
    """

    rate: float
    allowed: int
    taken: int = 0
    next_at: float = 0.0

    async def turn(self) -> None:
        """Wait until one more send is allowed, and take it."""
        while True:
            now = time.monotonic()
            if self.taken < self.allowed and now >= self.next_at:
                self.taken += 1
                self.next_at = now + 1 / self.rate
                return
            await asyncio.sleep(0.005)

    def allow(self, more: int, *, rate: float | None = None) -> None:
        """Let `more` sends go, at `rate` a second from now on if given."""
        self.allowed += more
        self.rate = rate or self.rate


@dataclass
class Sender:
    user: User
    conversations: list[str]
    count: int
    acked: list[dict[str, Any]] = field(default_factory=list)
    reconnects: int = 0
    # Shared with the other senders of a scenario that paces its burst.
    throttle: Throttle | None = None

    async def run(self) -> None:
        """Send `count` messages round-robin over the conversations, each acked once."""
        socket = await open_socket(self.user)
        i = 0
        if self.throttle is not None:
            await self.throttle.turn()
        while i < self.count:
            client_id = f"{self.user.id}-{i}"
            frame = {
                "type": "message.send",
                "conversationId": self.conversations[i % len(self.conversations)],
                "content": f"{self.user.username} #{i}",
                "clientMessageId": client_id,
                "requestId": client_id,
            }
            try:
                await socket.send(json.dumps(frame))
                ack = await self._ack(socket, client_id)
            except (ConnectionClosed, TimeoutError, OSError):
                # The same clientMessageId again: stored once, whatever happened.
                self.reconnects += 1
                socket = await open_socket(self.user)
                continue
            self.acked.append(ack["message"])
            i += 1
            if self.throttle is not None and i < self.count:
                await self.throttle.turn()
        await socket.close()

    async def _ack(self, socket: Any, client_id: str) -> dict[str, Any]:
        async with asyncio.timeout(ACK_TIMEOUT):
            while True:
                frame = json.loads(await socket.recv())
                if frame.get("requestId") == client_id:
                    assert frame["type"] == "message.ack", frame
                    return frame


@dataclass
class Receiver:
    user: User
    live: list[dict[str, Any]] = field(default_factory=list)
    live_at: list[float] = field(default_factory=list)
    synced: list[dict[str, Any]] = field(default_factory=list)
    close_codes: list[int | None] = field(default_factory=list)
    stopping: asyncio.Event = field(default_factory=asyncio.Event)
    # Messages that only the last sync, after the receivers stopped, picked up.
    final_recovered: int = 0
    # What this client holds, confirmed by watermark as a client of version 1.2 does.
    watermarks: Watermarks = field(default_factory=Watermarks)

    @property
    def ids(self) -> set[str]:
        return {m["id"] for m in self.live} | {m["id"] for m in self.synced}

    @property
    def live_repeats(self) -> int:
        return len(self.live) - len({m["id"] for m in self.live})

    @property
    def live_ids(self) -> set[str]:
        return {m["id"] for m in self.live}

    @property
    def recovered_by_sync(self) -> int:
        return len({m["id"] for m in self.synced} - self.live_ids)

    async def run(self) -> None:
        """Stay connected: sync after every (re)connect, then take messages live, confirming them in batches."""
        while not self.stopping.is_set():
            socket = await open_socket(self.user)
            # A confirmation sent just before a close may have been lost with it: confirm again.
            self.watermarks.confirmed.clear()
            unconfirmed = 0
            try:
                await self._sync(socket)
                while not self.stopping.is_set():
                    try:
                        frame = json.loads(await asyncio.wait_for(socket.recv(), 0.1))
                    except TimeoutError:
                        frame = None
                    if frame is not None and frame.get("type") == "message.new":
                        self.live.append(frame["message"])
                        self.live_at.append(time.monotonic())
                        self.watermarks.add(frame["message"])
                        unconfirmed += 1
                    if unconfirmed and (frame is None or unconfirmed >= 100):
                        await self._confirm(socket)
                        unconfirmed = 0
                await self._confirm(socket)
            except ConnectionClosed:
                pass
            finally:
                self.close_codes.append(socket.close_code)
                await socket.close()

    async def _sync(self, socket: Any) -> None:
        # Frames that arrive during a sync are sync's: live order is judged outside of it.
        while True:
            request_id = uuid.uuid4().hex
            await socket.send(json.dumps({"type": "sync", "requestId": request_id}))
            batch: list[dict[str, Any]] = []
            while True:
                frame = json.loads(await socket.recv())
                if frame.get("type") == "message.new":
                    batch.append(frame["message"])
                elif frame.get("type") == "sync.done" and frame.get("requestId") == request_id:
                    break
            self.synced.extend(batch)
            for message in batch:
                self.watermarks.add(message)
            await self._confirm(socket)
            if not frame["more"]:
                return

    async def _confirm(self, socket: Any) -> None:
        # Only over a contiguous run: what lies past a gap comes again by sync.
        for move in self.watermarks.moves():
            await socket.send(json.dumps(move))

    async def final_sync(self) -> None:
        """Pick up anything not yet held, as a client does after a reconnect."""
        held = self.ids
        socket = await open_socket(self.user)
        try:
            await self._sync(socket)
        finally:
            await socket.close()
        self.final_recovered = len(self.ids - held)


@dataclass
class Burst:
    """Four senders and two receivers in three group conversations."""

    stack: Stack
    base: str
    per_sender: int = 250
    senders: list[Sender] = field(default_factory=list)
    receivers: list[Receiver] = field(default_factory=list)
    conversation_ids: list[str] = field(default_factory=list)
    receiver_tasks: list[asyncio.Task] = field(default_factory=list)
    sending_took: float = 0.0
    last_ack_at: float = 0.0
    # Fresh messages sent after recovery to prove live delivery resumed, and how long they took.
    probes: list[dict[str, Any]] = field(default_factory=list)
    live_within: float | None = None
    live_probe_took: float | None = None

    @classmethod
    def prepare(cls, stack: Stack, base: str, senders: int = 4, per_sender: int = 250) -> Burst:
        burst = cls(stack, base, per_sender)
        sender_users = [register(base, f"sender{i}") for i in range(senders)]
        receiver_users = [register(base, f"receiver{i}") for i in range(2)]
        members = sender_users + receiver_users
        burst.conversation_ids = [conversation(members[0], *members[1:], title=f"burst {n}")["id"] for n in range(3)]
        burst.senders = [Sender(u, burst.conversation_ids, per_sender) for u in sender_users]
        burst.receivers = [Receiver(u) for u in receiver_users]
        return burst

    @classmethod
    async def launch(cls, stack: Stack, base: str) -> tuple[Burst, asyncio.Task]:
        """Prepare a burst, start its receivers, and start sending; return it and the sending task."""
        burst = cls.prepare(stack, base)
        await burst.start_receivers()
        return burst, asyncio.create_task(burst.send_all())

    @property
    def total(self) -> int:
        return self.per_sender * len(self.senders)

    def sent(self) -> int:
        return sum(len(s.acked) for s in self.senders)

    async def start_receivers(self) -> None:
        self.receiver_tasks = [asyncio.create_task(r.run()) for r in self.receivers]

    async def send_all(self) -> None:
        started = time.monotonic()
        await asyncio.gather(*(s.run() for s in self.senders))
        self.last_ack_at = time.monotonic()
        self.sending_took = self.last_ack_at - started

    async def wait_sent(self, at_least: int, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while self.sent() < at_least:
            assert time.monotonic() < deadline, f"only {self.sent()} sent"
            await asyncio.sleep(0.05)

    async def wait_delivered(self, *, live_within: float, timeout: float = 180) -> float:
        """Wait until every receiver holds every message, then prove live delivery works; stop the receivers.

        Return the seconds it took after the last ack until every receiver held
        every message (live or by sync). What is still missing after `timeout`
        is left to the final sync and counted in the figures; but a fresh
        message into every conversation must then reach every receiver live
        within `live_within` seconds, or this fails.
        """
        want = {m["id"] for s in self.senders for m in s.acked}
        deadline = time.monotonic() + timeout
        while any(want - r.ids for r in self.receivers):
            if time.monotonic() > deadline:
                break
            await asyncio.sleep(0.05)
        done = time.monotonic() - self.last_ack_at
        try:
            await self.probe_live(live_within)
        finally:
            for r in self.receivers:
                r.stopping.set()
            await asyncio.gather(*self.receiver_tasks, return_exceptions=True)
        for r in self.receivers:
            await r.final_sync()
        return done

    async def probe_live(self, within: float) -> None:
        """Send one fresh message into each conversation; each must reach every receiver live within `within` s."""
        self.live_within = within
        sender = self.senders[0]
        socket = await open_socket(sender.user)
        started = time.monotonic()
        try:
            for conversation_id in self.conversation_ids:
                client_id = f"probe-{uuid.uuid4().hex}"
                frame = {
                    "type": "message.send",
                    "conversationId": conversation_id,
                    "content": "live probe",
                    "clientMessageId": client_id,
                    "requestId": client_id,
                }
                await socket.send(json.dumps(frame))
                self.probes.append((await sender._ack(socket, client_id))["message"])
        finally:
            await socket.close()
        want = {m["id"] for m in self.probes}
        while any(want - r.live_ids for r in self.receivers):
            if time.monotonic() - started > within:
                late = {
                    r.user.username: f"{len(want & r.live_ids)} live, {len(want & (r.ids - r.live_ids))} by sync"
                    for r in self.receivers
                }
                raise AssertionError(
                    f"live delivery did not resume: of {len(want)} fresh messages after recovery, "
                    f"within {within}s each receiver got {late}"
                )
            await asyncio.sleep(0.05)
        self.live_probe_took = time.monotonic() - started

    def first_live_after(self, moment: float) -> float | None:
        """Seconds from `moment` until any receiver got a message live again; None if none did."""
        first = min((t for r in self.receivers for t in r.live_at if t >= moment), default=None)
        return None if first is None else round(first - moment, 1)

    def verify(self) -> dict[str, Any]:
        """Check the outcome; return the figures."""
        acked = {m["id"]: m for s in self.senders for m in s.acked}
        assert len(acked) == self.total, f"{len(acked)} distinct acks for {self.total} sends"
        assert self.live_probe_took is not None, "wait_delivered() proves live delivery before verify()"
        burst_ids = set(acked)
        acked.update((m["id"], m) for m in self.probes)
        expected_rows = self.total + len(self.probes)
        rows = self.stack.query(
            "SELECT conversation_id::text, seq, sender_id::text, client_message_id, id::text "
            "FROM messaging_message WHERE conversation_id::text = ANY(%s) ORDER BY conversation_id, seq",
            self.conversation_ids,
        )
        stored_twice = len(rows) - len({(r[2], r[3]) for r in rows})
        assert stored_twice == 0 and len(rows) == expected_rows, f"{len(rows)} rows stored for {expected_rows} sends"
        by_conversation: dict[str, list[int]] = {}
        for conversation_id, seq, *_ in rows:
            by_conversation.setdefault(conversation_id, []).append(seq)
        for seqs in by_conversation.values():
            assert seqs == list(range(1, len(seqs) + 1)), "seq has gaps or repeats"
        # Each sender's messages got seqs in the order they were sent.
        for sender in self.senders:
            for conversation_id in self.conversation_ids:
                seqs = [m["seq"] for m in sender.acked if m["conversationId"] == conversation_id]
                assert seqs == sorted(seqs)
        lost = 0
        for receiver in self.receivers:
            missing = set(acked) - receiver.ids
            lost += len(missing)
            unknown = receiver.ids - set(acked)
            assert not unknown, f"{receiver.user.username} got messages nobody sent"
            # Live order per sender and conversation, after dropping repeats as a client does.
            seen: set[str] = set()
            last: dict[tuple[str, str], int] = {}
            for message in receiver.live:
                if message["id"] in seen:
                    continue
                seen.add(message["id"])
                key = (message["senderId"], message["conversationId"])
                assert message["seq"] > last.get(key, 0), "a sender's messages arrived out of order"
                last[key] = message["seq"]
        assert lost == 0, f"{lost} message deliveries lost"
        return {
            "sent": self.total,
            "delivered": min(len(r.ids & burst_ids) for r in self.receivers),
            "lost": lost,
            "stored twice": stored_twice,
            # Per receiver and message: live plus by sync is receivers x sent when nothing was lost.
            "arrived live": sum(len(r.live_ids & burst_ids) for r in self.receivers),
            "arrived by sync": sum(r.recovered_by_sync for r in self.receivers),
            "of those by the final sync": sum(r.final_recovered for r in self.receivers),
            "live repeats dropped by id": sum(r.live_repeats for r in self.receivers),
            "fresh messages live after recovery": f"{len(self.probes)} to each receiver "
            f"in {self.live_probe_took:.1f} s (bound {self.live_within} s)",
            "sending s": round(self.sending_took, 1),
            "sender reconnects": sum(s.reconnects for s in self.senders),
        }
