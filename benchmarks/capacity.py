"""The capacity model of docs/SCALING.md: how many of each role serve a number of connected users.

Reads the costs that `make bench ONLY=scaleout` measured (one or more
`scaleout.json`; with several, each cost is the median over them) and the
assumptions below, and prints for each case the processes and cores of each
role, as built and with frames sent only to the processes of their users,
and the message rate at which one unit of each role is full:

    .venv/bin/python benchmarks/capacity.py [.run/bench/scaleout.json ...]

The model, per second, for N connected users each sending m messages a minute:

- messages S = N * m / 60; deliveries D = S * recipients per message * the
  share of recipients online; confirmations C = D * CONFIRMATIONS_PER_DELIVERY;
  frames published F = S * frames per message (measured), in F / frames per
  PUBLISH (measured) publishes;
- web: S * (per message) + D * (per delivery) + N * (idle socket), spread
  over P processes of which each also pays F * (per frame, the bystander's
  cost) for the frames of every user, its own or not; P is also at least N /
  SOCKETS_PER_WEB_PROCESS. When F * (per frame) alone passes a process's
  budget, no number of web processes is enough;
- Redis (the channel layer): each PUBLISH is written to every one of the P
  listening processes, so its cost grows with P (fitted as fixed + per
  listener from the single node's 2 listeners and the scale-out's 4);
- bridge: records handled (S * records per message) * (per record);
- Kafka: records produced (S * records per message) * (per record, with
  three replicas and acks=all as measured);
- PostgreSQL: S * (per message) + C * (per confirmation) as measured, where
  the confirmations reaching a busy process shared their transactions, and
  the worst case in which every confirmation is a transaction of its own.

Each process is kept under a budget of its core (WEB_BUDGET, ...), as
headroom for bursts and reconnect storms.
"""

from __future__ import annotations

import json
import math
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

### Assumptions ###

USERS = (100_000, 1_000_000)
# Messages each connected user sends a minute: an ordinary hour, and a busy one.
MESSAGES_PER_USER_PER_MINUTE = (0.1, 1.0)
# Conversation sizes: share of messages, recipients (members but the sender).
CONVERSATION_MIX = ((0.70, 1), (0.25, 7), (0.05, 99))
# Share of a message's recipients connected when it is sent.
RECIPIENTS_ONLINE = 0.5
# One message.received (upToSeq) per delivery, read markers riding along (one frame per conversation per 100 ms).
CONFIRMATIONS_PER_DELIVERY = 1.0
# Sockets one web process holds: 10,000 reconnect and sync in 13-17 s (make bench's storm).
SOCKETS_PER_WEB_PROCESS = 10_000
# An idle socket: 10,000 of them cost 7-8% of one core (presence heartbeats, pings) in make bench's storm.
IDLE_CORE_PER_SOCKET = 0.075 / 10_000
# Share of one core a process may use in steady state; the rest is for bursts and reconnect storms.
WEB_BUDGET = BRIDGE_BUDGET = 0.6
REDIS_BUDGET = 0.5
KAFKA_CORES_PER_BROKER = 4 * 0.6
POSTGRES_BUDGET = 0.6
MIN_BROKERS = 3
# Partitions bound the bridges a loop can use: two per bridge leaves room to add bridges without repartitioning.
PARTITIONS_PER_BRIDGE = 2
MIN_PARTITIONS = 12


def recipients_per_message() -> float:
    """Mean recipients of a message over the conversation mix."""
    return sum(share * recipients for share, recipients in CONVERSATION_MIX)


### Measured costs ###

COSTS = (
    "web_s_per_message",
    "web_s_per_delivery",
    "web_s_per_frame_per_process",
    "postgres_s_per_message",
    "postgres_s_per_confirmation",
    "postgres_s_per_commit",
    "bridge_s_per_record",
    "kafka_s_per_record",
    "redis_s_per_publish",
    "redis_s_per_frame",
    "frames_per_message",
    "frames_per_publish",
    "bridge_records_per_message",
    "kafka_records_per_message",
)


def measured(paths: list[Path]) -> dict[str, float]:
    """The scale-out's costs, the median over the runs given, and Redis's cost per PUBLISH and listener.

    Redis writes each PUBLISH to every listening web process: its cost per
    PUBLISH is fitted as fixed + per listener from the two targets (the
    single node's 2 listeners, the scale-out's 4).
    """
    runs = [json.loads(path.read_text()) for path in paths]

    def median(target: str, key: str) -> float:
        values = [run["costs"][target][key] for run in runs if run["costs"].get(target, {}).get(key) is not None]
        if not values:
            raise SystemExit(f"{key} of {target} was not measured in {', '.join(map(str, paths))}")
        return statistics.median(values)

    costs = {key: median("scaleout", key) for key in COSTS}
    listeners = {target: runs[0]["settings"][target]["web_processes"] for target in ("single", "scaleout")}
    few, many = median("single", "redis_s_per_publish"), costs["redis_s_per_publish"]
    per_listener = max(0.0, (many - few) / (listeners["scaleout"] - listeners["single"]))
    costs["redis_s_per_publish_fixed"] = max(0.0, many - per_listener * listeners["scaleout"])
    costs["redis_s_per_publish_per_listener"] = per_listener
    return costs


### The model ###


@dataclass
class Sizing:
    """What one case needs."""

    users: int
    per_minute: float
    messages: float
    deliveries: float
    frames: float
    web_processes: int | None
    web_cores: float | None
    web_limit: str
    redis_cores: float | None
    redis_shards: int | None
    bridge_cores: float
    bridges: int
    partitions: int
    kafka_cores: float
    brokers: int
    postgres_cores: float
    postgres_cores_unbatched: float


def redis_per_publish(costs: dict[str, float], listeners: float) -> float:
    """Redis's CPU seconds for one PUBLISH written to `listeners` web processes."""
    return costs["redis_s_per_publish_fixed"] + costs["redis_s_per_publish_per_listener"] * listeners


def size(users: int, per_minute: float, costs: dict[str, float], targeted: bool = False) -> Sizing:
    """Size every role for `users` connected users sending `per_minute` messages a minute each.

    As built, every web process reads every frame. `targeted`: each frame goes
    only to the processes holding its users (at most one per online recipient
    and the sender), as a channel per process or per user would do.
    """
    messages = users * per_minute / 60
    deliveries = messages * recipients_per_message() * RECIPIENTS_ONLINE
    confirmations = deliveries * CONFIRMATIONS_PER_DELIVERY
    frames = messages * costs["frames_per_message"]
    publishes = frames / costs["frames_per_publish"]

    socket_work = (
        messages * costs["web_s_per_message"] + deliveries * costs["web_s_per_delivery"] + users * IDLE_CORE_PER_SOCKET
    )
    by_sockets = math.ceil(users / SOCKETS_PER_WEB_PROCESS)
    # Processes a frame reaches when targeted: its users' (recipients online and the sender), at most all.
    touched = 1 + deliveries / messages
    web_processes: int | None
    if targeted:
        # Reading frames for its own users is then part of each process's share of the work.
        socket_work += frames * min(touched, by_sockets) * costs["web_s_per_frame_per_process"]
        broadcast = 0.0
    else:
        broadcast = frames * costs["web_s_per_frame_per_process"]  # each process, whatever its users
    if broadcast >= WEB_BUDGET:
        web_processes, web_cores, web_limit = None, None, "every frame to every process: one process cannot read them"
    else:
        by_cpu = math.ceil(socket_work / (WEB_BUDGET - broadcast))
        web_processes = max(by_sockets, by_cpu)
        web_cores = socket_work + web_processes * broadcast
        web_limit = "sockets per process" if by_sockets >= by_cpu else "CPU per message and delivery"

    redis_cores: float | None = None
    redis_shards: int | None = None
    if web_processes is not None:
        if targeted:
            reached = min(touched, web_processes)
            redis_cores = publishes * reached * redis_per_publish(costs, 1)
        else:
            redis_cores = publishes * redis_per_publish(costs, web_processes)
        redis_shards = max(1, math.ceil(redis_cores / REDIS_BUDGET))

    bridge_cores = messages * costs["bridge_records_per_message"] * costs["bridge_s_per_record"]
    bridges = max(1, math.ceil(bridge_cores / BRIDGE_BUDGET))
    kafka_cores = messages * costs["kafka_records_per_message"] * costs["kafka_s_per_record"]
    brokers = max(MIN_BROKERS, math.ceil(kafka_cores / KAFKA_CORES_PER_BROKER))
    postgres_cores = messages * costs["postgres_s_per_message"] + confirmations * costs["postgres_s_per_confirmation"]
    unbatched = messages * costs["postgres_s_per_message"] + confirmations * costs["postgres_s_per_commit"]

    return Sizing(
        users=users,
        per_minute=per_minute,
        messages=messages,
        deliveries=deliveries,
        frames=frames,
        web_processes=web_processes,
        web_cores=web_cores,
        web_limit=web_limit,
        redis_cores=redis_cores,
        redis_shards=redis_shards,
        bridge_cores=bridge_cores,
        bridges=bridges,
        partitions=max(MIN_PARTITIONS, PARTITIONS_PER_BRIDGE * bridges),
        kafka_cores=kafka_cores,
        brokers=brokers,
        postgres_cores=postgres_cores,
        postgres_cores_unbatched=unbatched,
    )


### Text ###


def cell(value: float | None, digits: int = 1) -> str:
    """A number, or 'no' where no number of processes is enough."""
    return "no" if value is None else f"{value:,.{digits}f}"


def sizing_table(costs: dict[str, float], targeted: bool) -> list[str]:
    """One row per case."""
    head = (
        f"{'users':>9} {'msg/min':>7} {'msg/s':>7} {'deliv/s':>8} | {'web procs':>9} {'web cores':>9} | "
        f"{'Redis cores':>11} {'shards':>6} | {'bridges':>7} {'parts':>5} | {'Kafka cores':>11} {'brokers':>7} | "
        f"{'PG cores':>8} {'unbatched':>9} | web limit"
    )
    lines = [head, "-" * len(head)]
    for users in USERS:
        for per_minute in MESSAGES_PER_USER_PER_MINUTE:
            s = size(users, per_minute, costs, targeted)
            lines.append(
                f"{s.users:>9,} {s.per_minute:>7g} {s.messages:>7,.0f} {s.deliveries:>8,.0f} | "
                f"{cell(s.web_processes, 0):>9} {cell(s.web_cores):>9} | {cell(s.redis_cores):>11} "
                f"{cell(s.redis_shards, 0):>6} | {s.bridges:>7} {s.partitions:>5} | {s.kafka_cores:>11.1f} "
                f"{s.brokers:>7} | {s.postgres_cores:>8.1f} {s.postgres_cores_unbatched:>9.1f} | {s.web_limit}"
            )
    return lines


def ceilings(costs: dict[str, float]) -> list[str]:
    """The message rate at which one unit of each role is full, whatever the number of the others."""
    per_message = {
        "web process, reading every frame (as built: a ceiling for the whole system)": WEB_BUDGET
        / (costs["frames_per_message"] * costs["web_s_per_frame_per_process"]),
        "web process, its own sockets' work (1 delivery per message)": WEB_BUDGET
        / (costs["web_s_per_message"] + costs["web_s_per_delivery"]),
        "bridge process (and so each partition's worth of a loop)": BRIDGE_BUDGET
        / (costs["bridge_records_per_message"] * costs["bridge_s_per_record"]),
        "Redis shard, 10 web processes listening": REDIS_BUDGET
        * costs["frames_per_publish"]
        / (costs["frames_per_message"] * redis_per_publish(costs, 10)),
        "Redis shard, 100 web processes listening": REDIS_BUDGET
        * costs["frames_per_publish"]
        / (costs["frames_per_message"] * redis_per_publish(costs, 100)),
        f"Kafka, per broker of {KAFKA_CORES_PER_BROKER:g} usable cores (3 replicas)": KAFKA_CORES_PER_BROKER
        / (costs["kafka_records_per_message"] * costs["kafka_s_per_record"]),
        "PostgreSQL, per usable core (confirmations batched as measured, 3.7 each)": POSTGRES_BUDGET
        / (costs["postgres_s_per_message"] + 3.7 * costs["postgres_s_per_confirmation"]),
        "PostgreSQL, per usable core (each confirmation its own commit)": POSTGRES_BUDGET
        / (costs["postgres_s_per_message"] + 3.7 * costs["postgres_s_per_commit"]),
    }
    return [f"  {name:<78} {rate:>9,.0f} msg/s" for name, rate in per_message.items()]


def render(costs: dict[str, float]) -> str:
    """The costs used, the sizing as built and with targeted frames, and each unit's ceiling."""
    lines = ["Measured (the scale-out run's; CPU in ms of one core):"]
    for key, value in costs.items():
        cpu = "_s_per_" in key
        name = key.replace("_s_per_", " ms per ").replace("_", " ")
        lines.append(f"  {name:<40} {value * 1000 if cpu else value:.3f}")
    lines.append(
        f"Assumptions: {recipients_per_message():.1f} recipients per message "
        f"({', '.join(f'{s:.0%} to {r}' for s, r in CONVERSATION_MIX)}), {RECIPIENTS_ONLINE:.0%} of them online, "
        f"{CONFIRMATIONS_PER_DELIVERY:g} confirmation per delivery, {SOCKETS_PER_WEB_PROCESS:,} sockets per web "
        f"process at most, {WEB_BUDGET:.0%} of a core per web or bridge process, {REDIS_BUDGET:.0%} per Redis "
        f"shard, {KAFKA_CORES_PER_BROKER:g} cores per broker"
    )
    lines += ["", "As built: every web process reads every frame", *sizing_table(costs, targeted=False)]
    lines += ["", "If each frame went only to the web processes of its users", *sizing_table(costs, targeted=True)]
    lines += ["", "Where one unit is full (msg/s, at the assumptions above):", *ceilings(costs)]
    return "\n".join(lines)


def main(argv: list[str]) -> None:
    """Print the model for the runs given (default: the last scale-out run)."""
    paths = [Path(arg) for arg in argv] or [ROOT / ".run" / "bench" / "scaleout.json"]
    print(render(measured(paths)))


if __name__ == "__main__":
    main(sys.argv[1:])
