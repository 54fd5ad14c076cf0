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
  takes it, before decoding it. Receivers confirm `message.new` with
  `message.received` in batches of 20, and what is left every 100 ms.
- After the last send it waits for the acks (up to ACK_WAIT_SECONDS), then
  drains: until each receiver has every acked message of this process's
  senders and nothing arrived for half a second, or nothing arrived for
  `drain_quiet` seconds, or `drain_max` passed. Then it confirms the rest and
  runs `sync` until `more` is false; what sync brings now counts as "by sync".
- A socket the server closes reconnects with backoff and sends `sync`, as the
  contract asks of a client; requests it had in flight stay without a reply.

It prints the raw record as one JSON line on stdout: when each message was
due and sent, each ack or error, and per (socket, message) the first live
arrival and how many live, by-sync and distinct-id copies came. The
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
from dataclasses import dataclass, field
from typing import Any

from websockets.asyncio.client import ClientConnection, connect

CONFIRM_BATCH = 20
CONFIRM_EVERY_SECONDS = 0.1
WARMUP_TIMEOUT_SECONDS = 60.0
# A sync fails once nothing at all arrived on its socket for this long.
SYNC_TIMEOUT_SECONDS = 30.0
# How long after the last send the acks may take; later ones leave their messages unresolved.
ACK_WAIT_SECONDS = 60.0
RECONNECT_MAX_DELAY_SECONDS = 5.0
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
    conn: ClientConnection | None = None
    acks: dict[str, tuple[float, str, Any]] = field(default_factory=dict)
    # requestIds of message.send frames on the current connection not answered yet.
    outstanding: set[str] = field(default_factory=set)
    arrivals: dict[int, Arrival] = field(default_factory=dict)
    warm: set[str] = field(default_factory=set)
    other: int = 0
    unconfirmed: list[str] = field(default_factory=list)
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
                    if number.isdigit():
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
                    self.unconfirmed.append(message["id"])
                    if len(self.unconfirmed) >= CONFIRM_BATCH:
                        await self.confirm()
                elif kind == "message.ack":
                    request_id = str(frame.get("requestId"))
                    self.outstanding.discard(request_id)
                    self.acks[request_id] = (now, "ack", None)
                elif kind == "error":
                    request_id = str(frame.get("requestId"))
                    self.outstanding.discard(request_id)
                    self.acks[request_id] = (now, frame.get("code", "error"), frame.get("retryAfterMs"))
                elif kind == "sync.done":
                    waiter = self.sync_waiters.pop(str(frame.get("requestId")), None)
                    if waiter is not None and not waiter.done():
                        waiter.set_result(frame)
        except Exception:  # the connection broke: handled below like a close
            pass
        finally:
            self.closed(conn)

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
                await self.conn.send(frame)
                self.outstanding.add(str(k))

    async def confirm(self) -> None:
        """Confirm what arrived since the last confirmation."""
        while self.unconfirmed and self.connected:
            batch, self.unconfirmed = self.unconfirmed[:500], self.unconfirmed[500:]
            with contextlib.suppress(Exception):
                await self.send({"type": "message.received", "messageIds": batch})

    async def sync(self, by_sync: bool) -> None:
        """Run the resume loop: confirm, `sync`, until `more` is false."""
        self.syncing = by_sync
        try:
            while True:
                await self.confirm()
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
            await self.confirm()
        finally:
            self.syncing = False

    async def final_sync(self) -> None:
        """The last `sync` after the drain; what it brings counts as "by sync"."""
        self.final = True
        if self.reconnecting is not None and not self.reconnecting.done():
            await self.reconnecting  # its sync is the final one
            return
        try:
            await self.sync(by_sync=True)
        except ConnectionError:
            if self.reconnecting is not None:
                await self.reconnecting

    async def close(self) -> None:
        """Close the socket and wait for the reader."""
        self.closing = True
        if self.reconnecting is not None:
            self.reconnecting.cancel()
        if self.conn is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.conn.close(), 5)
        if self.reader is not None:
            await asyncio.gather(self.reader, return_exceptions=True)


def emit(payload: dict[str, Any]) -> None:
    """Write one JSON line to the suite."""
    sys.stdout.write(json.dumps(payload, separators=(",", ":")) + "\n")
    sys.stdout.flush()


async def confirm_loop(clients: list[Client]) -> None:
    """Flush every socket's confirmations every CONFIRM_EVERY_SECONDS."""
    while True:
        await asyncio.sleep(CONFIRM_EVERY_SECONDS)
        for client in clients:
            if client.unconfirmed:
                await client.confirm()


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
        Client(spec["id"], job["url"] + spec.get("query", ""), spec["token"], spec["conversation"], label)
        for spec in job["sockets"]
    ]
    by_id = {client.index: client for client in clients}
    senders = {int(number): by_id[socket_id] for number, socket_id in job["senders"].items()}
    receivers_of: dict[str, list[Client]] = {}
    for client in clients:
        receivers_of.setdefault(client.conversation, []).append(client)

    await asyncio.gather(*(client.open() for client in clients))
    await asyncio.gather(*(client.sync(by_sync=False) for client in clients))
    confirming = asyncio.create_task(confirm_loop(clients))
    await warm_up(senders, receivers_of, label)
    emit({"ready": len(clients)})

    line = await asyncio.to_thread(sys.stdin.readline)
    start = time.perf_counter() + (float(line.split()[1]) - time.time())
    cpu_start = time.process_time()
    count = round(rate * duration)
    schedule = sorted(k for number in senders for k in range(number, count, total_senders))
    sent: dict[int, tuple[int, float]] = {}
    for k in schedule:
        due = start + k / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        sender = senders[k % total_senders]
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
    confirming.cancel()
    await asyncio.gather(confirming, return_exceptions=True)
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
