"""The benchmarks' load client: open-loop senders and confirming receivers over real WebSockets.

One client process runs a share of one measurement point. It reads a job (a
JSON line) on stdin, opens its sockets, sends `sync` on each (the client's
reconnect loop), warms the path up with one message per sender, prints
`{"ready": ...}` and waits for `go <epoch>` on stdin, so that every client
process starts at the same moment. Then:

- Senders send on a fixed schedule regardless of acks (open loop): message k
  of the whole point is due at `k / rate` seconds after the start and goes
  from sender `k % senders`, so the rate is spread evenly over all senders of
  all client processes.
- Every socket stamps each frame with `time.perf_counter()` as the reader
  takes it, before decoding it.
- Every socket confirms by watermark (contract 1.2): `message.received` with
  `conversationId` and `upToSeq`, the highest seq up to which it holds every
  message of its conversation (the others' messages as `message.new`, its
  own once acked), at most once per CONFIRM_EVERY_SECONDS: at once when the
  last one is older, else when that time has passed. Where the conversation
  starts is given in the job (`seq`: the last seq before the point); without
  it (the tutorial targets, whose seq is only counted per server process)
  the first seq the socket sees starts it. A gap holds the watermark until
  the server sends the missing message again (a client would fill it with
  `sync`; the load client waits, so that a gap shows in the figures).
- A `rate_limited` reply to a send pauses that sender for its
  `retryAfterMs`: the sends due meanwhile are held back (counted, never
  sent), as a client honouring the server's push-back would.
- After the last send it waits for the acks (up to ACK_WAIT_SECONDS), then
  drains: until each receiver has every acked message of this process's
  senders and nothing arrived for half a second, or nothing arrived for
  `drain_quiet` seconds, or `drain_max` passed. Then it confirms the rest and
  runs `sync` until `more` is false; what sync brings now counts as "by sync".
  Its own messages that a socket gets back (sync brings everything above the
  watermark) are counted apart.
- A socket the server closes reconnects with backoff and sends `sync`, as the
  contract asks of a client; requests it had in flight stay without a reply.

It prints the raw record as one JSON line on stdout: when each message was
due and sent, each ack or error, per (socket, message) the first live
arrival and how many live, by-sync and distinct-id copies came, and the
confirmation frames sent after the start (and the errors they got). The
benchmark suite joins the records of all client processes. `perf_counter` is
CLOCK_MONOTONIC on Linux, one clock for all processes of the machine.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import resource
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from websockets.asyncio.client import ClientConnection, connect

# The contract's "at most one frame per conversation per 100 ms".
CONFIRM_EVERY_SECONDS = 0.1
# Between the last confirmation and the final sync, so that sync does not race it.
CONFIRM_SETTLE_SECONDS = 0.3
WARMUP_TIMEOUT_SECONDS = 60.0
# A sync fails once nothing at all arrived on its socket for this long.
SYNC_TIMEOUT_SECONDS = 30.0
# A sync whose batches leave the watermark where it was this many times in a row gives up.
SYNC_STALLED_ROUNDS = 3
# How long after the last send the acks may take; later ones leave their messages unresolved.
ACK_WAIT_SECONDS = 60.0
RECONNECT_MAX_DELAY_SECONDS = 5.0
# Handshakes under way at once per client process, and tries per socket: hundreds of sockets
# opening at the same moment would outlast a server's handshake timeout on a busy machine.
OPEN_CONCURRENCY = 50
OPEN_ATTEMPTS = 5
# Frames nobody measures; skipped before decoding to keep the client's CPU low.
IGNORED_PREFIXES = ('{"type":"message.status"', '{"type":"typing"', '{"type":"notification"')


def raise_open_file_limit() -> int:
    """Raise the soft limit on open files to the hard limit; return it."""
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


@dataclass
class Arrival:
    """The copies of one message one socket received."""

    first_live: float | None = None
    live: int = 0
    by_sync: int = 0
    ids: set[str] = field(default_factory=set)


@dataclass
class Client:
    """One WebSocket of the load: sends, receives, confirms, and reconnects (then `sync`s) when closed."""

    index: int
    url: str
    token: str
    conversation: str
    label: str
    # The watermark: every seq up to it is held; None until the first seq seen starts it.
    held: int | None = None
    conn: ClientConnection | None = None
    acks: dict[str, tuple[float, str, Any]] = field(default_factory=dict)
    # requestIds of message.send frames on the current connection not answered yet.
    outstanding: set[str] = field(default_factory=set)
    arrivals: dict[int, Arrival] = field(default_factory=dict)
    warm: set[str] = field(default_factory=set)
    other: int = 0
    # Message numbers this socket sent; sync may bring them back.
    own: set[int] = field(default_factory=set)
    own_back: int = 0
    # Seqs held above a gap.
    above: set[int] = field(default_factory=set)
    confirmed: int = 0
    last_confirm: float = float("-inf")
    confirm_timer: asyncio.TimerHandle | None = None
    confirm_frames: int = 0
    confirm_errors: Counter = field(default_factory=Counter)
    # A rate_limited reply's retryAfterMs: no sends before this.
    paused_until: float = 0.0
    syncing: bool = False
    final: bool = False
    closing: bool = False
    sync_waiters: dict[str, asyncio.Future] = field(default_factory=dict)
    syncs: int = 0
    last_new: float = 0.0
    last_frame: float = 0.0
    reader: asyncio.Task | None = None
    reconnecting: asyncio.Task | None = None
    reconnects: int = 0
    close_codes: list[int | None] = field(default_factory=list)
    tasks: set[asyncio.Task] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.confirmed = self.held or 0

    async def open(self) -> None:
        """Connect and start the reader."""
        self.conn = await connect(
            self.url,
            additional_headers={"Authorization": f"Token {self.token}"},
            max_size=None,
            max_queue=4096,
            open_timeout=60,
            ping_interval=None,
            compression=None,
        )
        self.last_frame = time.perf_counter()
        self.reader = asyncio.create_task(self.read(self.conn))

    async def read(self, conn: ClientConnection) -> None:
        """Stamp and record every frame."""
        prefix = self.label + "."
        try:
            async for raw in conn:
                now = self.last_frame = time.perf_counter()
                if isinstance(raw, bytes) or raw.startswith(IGNORED_PREFIXES):
                    continue
                frame = json.loads(raw)
                kind = frame.get("type")
                if kind == "message.new":
                    message = frame["message"]
                    self.last_new = now
                    client_id = message.get("clientMessageId") or ""
                    number = client_id[len(prefix) :] if client_id.startswith(prefix) else ""
                    if number.isdigit() and int(number) in self.own:
                        self.own_back += 1
                    elif number.isdigit():
                        arrival = self.arrivals.get(int(number))
                        if arrival is None:
                            arrival = self.arrivals[int(number)] = Arrival()
                        if self.syncing:
                            arrival.by_sync += 1
                        else:
                            arrival.live += 1
                            if arrival.first_live is None:
                                arrival.first_live = now
                        arrival.ids.add(message["id"])
                    elif client_id.startswith(prefix):
                        self.warm.add(client_id)
                    else:
                        self.other += 1
                    self.hold(message.get("seq"))
                elif kind == "message.ack":
                    request_id = str(frame.get("requestId"))
                    self.outstanding.discard(request_id)
                    self.acks[request_id] = (now, "ack", None)
                    self.hold(frame.get("message", {}).get("seq"))
                elif kind == "error":
                    self.refused(frame, now)
                elif kind == "sync.done":
                    self.sync_done(frame)
        except Exception:  # the connection broke: handled below like a close
            pass
        finally:
            self.closed(conn)

    def refused(self, frame: dict[str, Any], now: float) -> None:
        """Record an error frame: a send's reply, or (no requestId) a confirmation's."""
        code, request_id = frame.get("code", "error"), frame.get("requestId")
        if request_id is None:
            self.confirm_errors[code] += 1
            return
        self.outstanding.discard(str(request_id))
        retry_after = frame.get("retryAfterMs")
        self.acks[str(request_id)] = (now, code, retry_after)
        if code == "rate_limited" and isinstance(retry_after, int | float):
            self.paused_until = max(self.paused_until, now + retry_after / 1000)

    def sync_done(self, frame: dict[str, Any]) -> None:
        """Wake the sync that waits for this frame; a watermark the server already has moves ours up."""
        for state in frame.get("conversations") or []:
            if state.get("conversationId") == self.conversation and isinstance(state.get("deliveredSeq"), int):
                self.advance(state["deliveredSeq"])
        waiter = self.sync_waiters.pop(str(frame.get("requestId")), None)
        if waiter is not None and not waiter.done():
            waiter.set_result(frame)

    def hold(self, seq: Any) -> None:
        """Count one message of the conversation as held; confirm when the watermark moved."""
        if not isinstance(seq, int):
            return
        if self.held is None:
            self.held = self.confirmed = seq - 1
        if seq <= self.held:
            return
        self.above.add(seq)
        self.advance(self.held)

    def advance(self, floor: int) -> None:
        """Move the watermark to at least `floor`, then over every contiguous seq held above it."""
        held = max(self.held or 0, floor)
        while held + 1 in self.above:
            held += 1
        if held != self.held:
            self.held = held
            self.above = {seq for seq in self.above if seq > held}
        if held > self.confirmed:
            self.confirm_soon()

    def confirm_soon(self) -> None:
        """Confirm now, or once CONFIRM_EVERY_SECONDS have passed since the last confirmation."""
        if self.confirm_timer is not None or self.closing:
            return
        delay = max(0.0, self.last_confirm + CONFIRM_EVERY_SECONDS - time.perf_counter())
        self.confirm_timer = asyncio.get_running_loop().call_later(delay, self.confirm_due)

    def confirm_due(self) -> None:
        """Send the confirmation the timer was set for."""
        self.confirm_timer = None
        task = asyncio.create_task(self.confirm())
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def confirm(self) -> None:
        """Send the watermark if it moved since the last confirmation."""
        if self.held is None or self.held <= self.confirmed or not self.connected:
            return
        self.confirmed, self.last_confirm = self.held, time.perf_counter()
        self.confirm_frames += 1
        with contextlib.suppress(Exception):
            await self.send({"type": "message.received", "conversationId": self.conversation, "upToSeq": self.held})

    async def flush_confirmations(self) -> None:
        """Confirm what is held now, keeping to one confirmation per CONFIRM_EVERY_SECONDS."""
        if self.confirm_timer is not None:
            self.confirm_timer.cancel()
            self.confirm_timer = None
        await asyncio.sleep(max(0.0, self.last_confirm + CONFIRM_EVERY_SECONDS - time.perf_counter()))
        await self.confirm()

    def closed(self, conn: ClientConnection) -> None:
        """Account for a closed connection and, unless we closed it, reconnect."""
        self.close_codes.append(conn.close_code)
        now = time.perf_counter()
        for request_id in self.outstanding:
            self.acks.setdefault(request_id, (now, "closed", None))
        self.outstanding.clear()
        for waiter in self.sync_waiters.values():
            if not waiter.done():
                waiter.set_exception(ConnectionError(f"closed with {conn.close_code}"))
        self.sync_waiters.clear()
        if not self.closing:
            self.reconnecting = asyncio.create_task(self.reconnect())

    async def reconnect(self) -> None:
        """Reconnect with backoff and `sync`, as the contract asks of a client."""
        delay = 0.1
        while not self.closing:
            await asyncio.sleep(delay)
            try:
                await self.open()
                self.reconnects += 1
                # The server may not have applied what the closed connection confirmed: say it again.
                self.confirmed = 0
                await self.sync(by_sync=self.final)
                return
            except Exception:
                delay = min(delay * 2, RECONNECT_MAX_DELAY_SECONDS)

    @property
    def connected(self) -> bool:
        """Whether the current connection is open."""
        return self.conn is not None and self.reader is not None and not self.reader.done()

    async def send(self, frame: dict[str, Any]) -> None:
        """Send one frame."""
        assert self.conn is not None
        await self.conn.send(json.dumps(frame, separators=(",", ":")))

    async def send_message(self, k: int, frame: str) -> None:
        """Send message.send number k (a failed send stays without a reply)."""
        if self.connected:
            assert self.conn is not None
            with contextlib.suppress(Exception):
                self.own.add(k)
                await self.conn.send(frame)
                self.outstanding.add(str(k))

    async def sync(self, by_sync: bool) -> None:
        """Run the resume loop: confirm, `sync`, until `more` is false."""
        self.syncing = by_sync
        stalled = 0
        try:
            while True:
                held_before = self.held
                await self.flush_confirmations()
                self.syncs += 1
                request_id = f"sync-{self.syncs}"
                waiter = self.sync_waiters[request_id] = asyncio.get_running_loop().create_future()
                await self.send({"type": "sync", "requestId": request_id})
                while True:
                    with contextlib.suppress(TimeoutError):
                        done = await asyncio.wait_for(asyncio.shield(waiter), 1.0)
                        break
                    if time.perf_counter() - self.last_frame > SYNC_TIMEOUT_SECONDS:
                        raise TimeoutError(f"no sync.done after {SYNC_TIMEOUT_SECONDS:.0f} s of silence")
                if not done.get("more"):
                    break
                stalled = stalled + 1 if self.held == held_before else 0
                if stalled >= SYNC_STALLED_ROUNDS:
                    raise RuntimeError(
                        f"sync brings only messages up to the confirmed seq {self.held} again: "
                        "the server does not take the confirmations"
                    )
            await self.flush_confirmations()
        finally:
            self.syncing = False

    async def final_sync(self) -> None:
        """The last `sync` after the drain; what it brings counts as "by sync"."""
        self.final = True
        if self.reconnecting is not None and not self.reconnecting.done():
            await self.reconnecting  # its sync is the final one
            return
        try:
            await self.flush_confirmations()
            await asyncio.sleep(CONFIRM_SETTLE_SECONDS)
            await self.sync(by_sync=True)
        except ConnectionError:
            if self.reconnecting is not None:
                await self.reconnecting

    async def close(self) -> None:
        """Close the socket and wait for the reader."""
        self.closing = True
        if self.confirm_timer is not None:
            self.confirm_timer.cancel()
        if self.reconnecting is not None:
            self.reconnecting.cancel()
        if self.conn is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.conn.close(), 5)
        if self.reader is not None:
            await asyncio.gather(self.reader, *self.tasks, return_exceptions=True)


def emit(payload: dict[str, Any]) -> None:
    """Write one JSON line to the suite."""
    sys.stdout.write(json.dumps(payload, separators=(",", ":")) + "\n")
    sys.stdout.flush()


async def open_all(clients: list[Client]) -> None:
    """Open every socket, OPEN_CONCURRENCY at a time, trying again with backoff as a client would."""
    gate = asyncio.Semaphore(OPEN_CONCURRENCY)

    async def open_one(client: Client) -> None:
        delay = 0.2
        for attempt in range(1, OPEN_ATTEMPTS + 1):
            async with gate:
                try:
                    await client.open()
                    return
                except Exception:
                    if attempt == OPEN_ATTEMPTS:
                        raise
            await asyncio.sleep(delay)
            delay = min(delay * 2, RECONNECT_MAX_DELAY_SECONDS)

    await asyncio.gather(*(open_one(client) for client in clients))


async def warm_up(senders: dict[int, Client], receivers_of: dict[str, list[Client]], label: str) -> None:
    """Send one message per sender and wait until its ack and every local receiver have it."""
    for number, sender in senders.items():
        client_id = f"{label}.w{number}"
        await sender.send(
            {
                "type": "message.send",
                "requestId": f"w{number}",
                "conversationId": sender.conversation,
                "content": f"warm-up {client_id}",
                "clientMessageId": client_id,
            }
        )
    deadline = time.monotonic() + WARMUP_TIMEOUT_SECONDS
    for number, sender in senders.items():
        client_id = f"{label}.w{number}"
        while f"w{number}" not in sender.acks or any(
            client_id not in r.warm for r in receivers_of[sender.conversation] if r is not sender
        ):
            reply = sender.acks.get(f"w{number}")
            if reply is not None and reply[1] != "ack":
                raise RuntimeError(f"warm-up message {client_id} refused: {reply[1]}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"warm-up message {client_id} did not go round in {WARMUP_TIMEOUT_SECONDS:.0f} s")
            await asyncio.sleep(0.02)


async def run(job: dict[str, Any]) -> dict[str, Any]:
    """Run one share of a measurement point; return the raw record."""
    label, rate, duration = job["label"], float(job["rate"]), float(job["duration"])
    total_senders = int(job["total_senders"])
    clients = [
        Client(
            spec["id"],
            spec.get("url", job["url"]) + spec.get("query", ""),
            spec["token"],
            spec["conversation"],
            label,
            spec.get("seq"),
        )
        for spec in job["sockets"]
    ]
    by_id = {client.index: client for client in clients}
    senders = {int(number): by_id[socket_id] for number, socket_id in job["senders"].items()}
    receivers_of: dict[str, list[Client]] = {}
    for client in clients:
        receivers_of.setdefault(client.conversation, []).append(client)

    await open_all(clients)
    await asyncio.gather(*(client.sync(by_sync=False) for client in clients))
    await warm_up(senders, receivers_of, label)
    emit({"ready": len(clients)})

    line = await asyncio.to_thread(sys.stdin.readline)
    start = time.perf_counter() + (float(line.split()[1]) - time.time())
    cpu_start = time.process_time()
    for client in clients:
        client.confirm_frames = 0
        client.confirm_errors.clear()
    count = round(rate * duration)
    schedule = sorted(k for number in senders for k in range(number, count, total_senders))
    sent: dict[int, tuple[int, float]] = {}
    held_back = 0
    for k in schedule:
        due = start + k / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        sender = senders[k % total_senders]
        if sender.paused_until > time.perf_counter():
            held_back += 1  # the server asked this sender to wait (retryAfterMs)
            continue
        frame = json.dumps(
            {
                "type": "message.send",
                "requestId": str(k),
                "conversationId": sender.conversation,
                "content": f"bench {label}.{k}",
                "clientMessageId": f"{label}.{k}",
            },
            separators=(",", ":"),
        )
        sent_at = time.perf_counter()
        await sender.send_message(k, frame)
        sent[k] = (k % total_senders, sent_at)
    end_send = time.perf_counter()

    # Acks first (an ack means the server took the message), then the receivers drain.
    ack_deadline = end_send + ACK_WAIT_SECONDS
    waiting = list(sent.items())
    while waiting and time.perf_counter() < ack_deadline:
        await asyncio.sleep(0.05)
        waiting = [(k, item) for k, item in waiting if str(k) not in senders[item[0]].acks]
    end_acks = time.perf_counter()
    acked = {k: number for k, (number, _) in sent.items() if senders[number].acks.get(str(k), (0, ""))[1] == "ack"}
    expected = [
        (receiver, k)
        for k, number in acked.items()
        for receiver in receivers_of[senders[number].conversation]
        if receiver is not senders[number]
    ]
    drain_max, drain_quiet = float(job["drain_max"]), float(job["drain_quiet"])
    while True:
        now = time.perf_counter()
        last = max([end_acks, *(c.last_new for c in clients)])
        if now >= end_acks + drain_max or now - last >= drain_quiet:
            break
        if now - last >= 0.5:
            expected = [(r, k) for r, k in expected if k not in r.arrivals]
            if not expected:
                break
        await asyncio.sleep(0.05)
    end_drain = time.perf_counter()
    results = await asyncio.gather(*(c.final_sync() for c in clients), return_exceptions=True)
    sync_errors = [f"{type(r).__name__}: {r}" for r in results if isinstance(r, BaseException)]
    cpu = time.process_time() - cpu_start
    record = {
        "start": start,
        "end_send": end_send,
        "end_acks": end_acks,
        # Messages acked after this may have been stored after the final sync read: unresolved, not lost.
        "final_sync": end_drain,
        "cpu_seconds": cpu,
        "wall_seconds": time.perf_counter() - start,
        "sends": [[k, number, start + k / rate, sent_at] for k, (number, sent_at) in sent.items()],
        "acks": [
            [k, *senders[number].acks[str(k)]] for k, (number, _) in sent.items() if str(k) in senders[number].acks
        ],
        "arrivals": [
            [client.index, k, a.first_live, a.live, a.by_sync, len(a.ids)]
            for client in clients
            for k, a in client.arrivals.items()
        ],
        "held_back": held_back,
        "confirm_frames": sum(c.confirm_frames for c in clients),
        "confirm_errors": dict(sum((c.confirm_errors for c in clients), Counter())),
        # Sockets whose watermark still stops at a gap after the final sync.
        "watermark_gaps": sum(bool(c.above) for c in clients),
        "own_back": sum(c.own_back for c in clients),
        "other_frames": sum(c.other for c in clients),
        "reconnects": sum(c.reconnects for c in clients),
        "close_codes": [code for c in clients for code in c.close_codes],
        "sync_errors": sync_errors,
    }
    await asyncio.gather(*(client.close() for client in clients))
    return record


def main() -> None:
    """Read the job, run it, print the record."""
    raise_open_file_limit()
    job = json.loads(sys.stdin.readline())
    try:
        emit(asyncio.run(run(job)))
    except Exception as exc:
        emit({"error": f"{type(exc).__name__}: {exc}"})
        raise


if __name__ == "__main__":
    main()
