"""Figures of the scale-out run (benchmarks/scaleout.py): the two targets side by side, and each role's costs.

Costs are CPU seconds (less the idle target's) per unit of work, over each
point from its first send until its clients' final sync:

- web: per message sent and per delivery, fitted over the points (least
  squares on two unknowns: the direct points have one delivery per message,
  the fan-out point hundreds). In the scale-out, each web process also pays
  for every frame published, for its users or not: the (a process whose one socket is a user in no conversation)
  measures that share, which is taken off the others' first;
- PostgreSQL: per message sent and per confirmation frame, fitted likewise;
- bridge: per record handled; Kafka: per record produced (with its replicas);
- Redis: per PUBLISH, and per frame published (the records of the delivery
  loops, each a frame in a published batch).

The work itself per message and per confirmation (Kafka records, frames,
database commits) is fitted the same way, for the capacity model of
docs/SCALING.md (benchmarks/capacity.py).
"""

from __future__ import annotations

from typing import Any

from benchmarks.report import fmt, fmt_ms, fmt_ratio, ratio

SINGLE, SCALEOUT = "single", "scaleout"
NAMES = {SINGLE: "single node", SCALEOUT: "scale-out"}
# The web process whose only socket is a user in no conversation: it gets every batch and delivers nothing.
BYSTANDER = "web, bystander"
FRAME_LOOPS = ("chat-messages", "message-status-events", "typing-events", "notifications")


### Work and CPU of a point ###


def work(point: dict[str, Any]) -> dict[str, float]:
    """The units of work a point did, from the clients and the meter's counters."""
    counted = point["meter"]["work"]
    loops = counted["bridge_records"]
    return {
        "messages": point["acked"],
        "deliveries": point["deliveries_live"],
        "confirmations": point["confirm_frames"],
        "kafka_records": sum(v for topic, v in counted["kafka_records"].items() if not topic.endswith(".DLT")),
        "bridge_records": sum(loops.values()),
        "frames": sum(v for loop, v in loops.items() if loop in FRAME_LOOPS),
        "publishes": sum(server["publish"] for server in counted["redis"]),
        "redis_out_bytes": sum(server["out_bytes"] for server in counted["redis"]),
        "commits": counted["database"]["commits"],
    }


def fit(rows: list[tuple[float, float, float]]) -> tuple[float, float] | None:
    """Least squares y = a * x1 + b * x2 over rows of (x1, x2, y); None when the rows cannot tell a from b."""
    s11 = sum(x1 * x1 for x1, _x2, _y in rows)
    s22 = sum(x2 * x2 for _x1, x2, _y in rows)
    s12 = sum(x1 * x2 for x1, x2, _y in rows)
    s1y = sum(x1 * y for x1, _x2, y in rows)
    s2y = sum(x2 * y for _x1, x2, y in rows)
    det = s11 * s22 - s12 * s12
    if len(rows) < 2 or det <= 1e-9 * s11 * s22:
        return None
    return (s1y * s22 - s2y * s12) / det, (s2y * s11 - s1y * s12) / det


def per(numerator: float, denominator: float) -> float | None:
    """A ratio, None for nothing to divide by."""
    return numerator / denominator if denominator else None


def costs_of(points: list[dict[str, Any]], web_processes_with_sockets: int) -> dict[str, Any]:
    """One target's costs per unit of work, from its points."""
    done = [(work(p), p["meter"]["cpu_s_net"]) for p in points if "meter" in p]
    if not done:
        return {}
    total = {key: sum(w[key] for w, _cpu in done) for key in done[0][0]}

    def cpu(role: str) -> float:
        return sum(c.get(role, 0.0) for _w, c in done)

    # What one web process pays per frame published, for its users or not (the bystander).
    per_frame_per_process = per(cpu(BYSTANDER), total["frames"]) if any(BYSTANDER in c for _w, c in done) else None
    broadcast = per_frame_per_process or 0.0
    web = fit(
        [
            (w["messages"], w["deliveries"], c.get("web", 0.0) - web_processes_with_sockets * broadcast * w["frames"])
            for w, c in done
        ]
    )
    database = fit([(w["messages"], w["confirmations"], c.get("postgres", 0.0)) for w, c in done])

    def mix(key: str) -> tuple[float, float] | None:
        return fit([(w["messages"], w["confirmations"], w[key]) for w, _c in done])

    kafka_mix, frames_mix, commits_mix, bridge_mix = (
        mix("kafka_records"),
        mix("frames"),
        mix("commits"),
        mix("bridge_records"),
    )
    return {
        "work": total,
        "cpu_s": {role: round(cpu(role), 3) for role in done[0][1]},
        "web_s_per_message": web[0] if web else None,
        "web_s_per_delivery": web[1] if web else None,
        "web_s_per_frame_per_process": per_frame_per_process,
        "postgres_s_per_message": database[0] if database else None,
        "postgres_s_per_confirmation": database[1] if database else None,
        "postgres_s_per_commit": per(cpu("postgres"), total["commits"]),
        "bridge_s_per_record": per(cpu("bridge"), total["bridge_records"]),
        "kafka_s_per_record": per(cpu("kafka"), total["kafka_records"]),
        "redis_s_per_publish": per(cpu("redis"), total["publishes"]),
        "redis_s_per_frame": per(cpu("redis"), total["frames"]),
        "redis_bytes_out_per_publish": per(total["redis_out_bytes"], total["publishes"]),
        "confirmations_per_delivery": per(total["confirmations"], total["deliveries"]),
        "frames_per_publish": per(total["frames"], total["publishes"]),
        "kafka_records_per_message": kafka_mix[0] if kafka_mix else None,
        "kafka_records_per_confirmation": kafka_mix[1] if kafka_mix else None,
        "bridge_records_per_message": bridge_mix[0] if bridge_mix else None,
        "bridge_records_per_confirmation": bridge_mix[1] if bridge_mix else None,
        "frames_per_message": frames_mix[0] if frames_mix else None,
        "frames_per_confirmation": frames_mix[1] if frames_mix else None,
        "commits_per_message": commits_mix[0] if commits_mix else None,
        "commits_per_confirmation": commits_mix[1] if commits_mix else None,
    }


def costs(results: dict[str, Any]) -> dict[str, Any]:
    """Each target's costs per unit of work."""
    with_sockets = {
        SINGLE: results["settings"]["single"]["web_processes"],
        SCALEOUT: results["settings"]["scaleout"]["web_processes_with_sockets"],
    }
    points = results["points"]
    return {key: costs_of([p for p in points if p["target"] == key], with_sockets[key]) for key in (SINGLE, SCALEOUT)}


### Text ###


def find(points: list[dict[str, Any]], target: str, scenario: str, rate: float) -> dict[str, Any] | None:
    """The point of a target at a scenario and rate."""
    return next((p for p in points if (p["target"], p["scenario"], p["offered"]) == (target, scenario, rate)), None)


def side_by_side(points: list[dict[str, Any]]) -> str:
    """Each point of the scale-out beside the single node's: rates, percentiles, losses, with ratios."""
    head = (
        f"{'point':<18} | {'received/s':^21} | {'p50 ms':^22} | {'p95 ms':^22} | {'p99 ms':^22} | "
        f"{'ack p99 ms':^15} | {'lost':^12} | {'by sync':^12} | {'dup':^12}"
    )
    sub = (
        f"{'':<18} | {'single':>6} {'scale':>6} {'ratio':>7} | "
        + " | ".join(f"{'single':>6} {'scale':>6} {'ratio':>8}" for _ in range(3))
        + f" | {'single':>7} {'scale':>7}"
        + f" | {'single':>6} {'scale':>5}" * 3
    )
    lines = [head, sub, "-" * len(sub)]
    keys = sorted({(p["scenario"], p["offered"]) for p in points}, key=lambda k: (k[0] != "direct", k[1]))
    for scenario, rate in keys:
        one, many = find(points, SINGLE, scenario, rate), find(points, SCALEOUT, scenario, rate)

        def get(point: dict[str, Any] | None, *path: str) -> Any:
            value: Any = point
            for key in path:
                value = None if value is None else value.get(key)
            return value

        row = f"{scenario + ' ' + format(rate, '.0f') + ' msg/s':<18} | "
        row += (
            f"{fmt(get(one, 'received_per_s')):>6} {fmt(get(many, 'received_per_s')):>6} "
            f"{fmt_ratio(ratio(get(many, 'received_per_s'), get(one, 'received_per_s'))):>7}"
        )
        for q in ("p50", "p95", "p99"):
            a, b = get(one, "latency_ms", q), get(many, "latency_ms", q)
            row += f" | {fmt_ms(a):>6} {fmt_ms(b):>6} {fmt_ratio(ratio(b, a)):>8}"
        row += f" | {fmt_ms(get(one, 'ack_ms', 'p99')):>7} {fmt_ms(get(many, 'ack_ms', 'p99')):>7}"
        for key in ("lost", "by_sync", "dup"):
            row += f" | {get(one, key) if one else '-':>6} {get(many, key) if many else '-':>5}"
        lines.append(row)
    lines.append(
        "ratio: scale-out / single node, same clients, same run; latency: send -> the receiver's message.new;\n"
        "lost: acked, neither received live nor brought by the final sync; by sync: only by that sync; "
        "dup: repeated message.new"
    )
    return "\n".join(lines)


def cpu_table(points: list[dict[str, Any]]) -> str:
    """CPU (% of one core) of each role during the sends, per point and target."""
    roles = ("web", BYSTANDER, "bridge", "kafka", "postgres", "redis", "client")
    head = f"{'point':<18} {'target':<12} " + " ".join(f"{r:>8}" for r in ("web", "bystndr", *roles[2:]))
    lines = [head, "-" * len(head)]
    for p in sorted(points, key=lambda p: (p["scenario"] != "direct", p["offered"], p["target"])):
        cells = " ".join(f"{p['cpu_percent'][r]:>8.0f}" if r in p["cpu_percent"] else f"{'-':>8}" for r in roles)
        lines.append(f"{p['scenario'] + ' ' + format(p['offered'], '.0f'):<18} {NAMES[p['target']]:<12} {cells}")
    lines.append(
        "% of one core during the sends, summed over the role's processes (bystndr: the web process whose one\n"
        "socket is in no conversation: what each process pays for the frames of users it does not hold)"
    )
    return "\n".join(lines)


def ms(value: float | None, scale: float = 1000.0, digits: int = 3) -> str:
    """CPU seconds as milliseconds (or another unit by `scale`)."""
    return "-" if value is None else f"{value * scale:.{digits}f}"


def cost_table(all_costs: dict[str, Any]) -> str:
    """Each role's CPU per unit of work, for both targets."""
    rows = [
        ("web, per message sent (ms)", "web_s_per_message", 1000.0),
        ("web, per delivery (ms)", "web_s_per_delivery", 1000.0),
        ("web, per frame published, each process (ms)", "web_s_per_frame_per_process", 1000.0),
        ("PostgreSQL, per message sent (ms)", "postgres_s_per_message", 1000.0),
        ("PostgreSQL, per confirmation frame (ms)", "postgres_s_per_confirmation", 1000.0),
        ("PostgreSQL, per commit (ms)", "postgres_s_per_commit", 1000.0),
        ("bridge, per record handled (ms)", "bridge_s_per_record", 1000.0),
        ("Kafka, per record produced (ms)", "kafka_s_per_record", 1000.0),
        ("Redis, per PUBLISH (ms)", "redis_s_per_publish", 1000.0),
        ("Redis, per frame published (ms)", "redis_s_per_frame", 1000.0),
        ("Kafka records per message", "kafka_records_per_message", 1.0),
        ("Kafka records per confirmation", "kafka_records_per_confirmation", 1.0),
        ("bridge records per message", "bridge_records_per_message", 1.0),
        ("bridge records per confirmation", "bridge_records_per_confirmation", 1.0),
        ("frames per message", "frames_per_message", 1.0),
        ("frames per confirmation", "frames_per_confirmation", 1.0),
        ("frames per PUBLISH", "frames_per_publish", 1.0),
        ("bytes Redis sent per PUBLISH (to every listener)", "redis_bytes_out_per_publish", 1.0),
        ("confirmations per delivery", "confirmations_per_delivery", 1.0),
        ("commits per message", "commits_per_message", 1.0),
        ("commits per confirmation", "commits_per_confirmation", 1.0),
    ]
    head = f"{'CPU seconds of one core, less the idle targets':<46} {'single':>10} {'scale-out':>10}"
    lines = [head, "-" * len(head)]
    for label, key, scale in rows:
        lines.append(
            f"{label:<46} {ms(all_costs.get(SINGLE, {}).get(key), scale):>10} "
            f"{ms(all_costs.get(SCALEOUT, {}).get(key), scale):>10}"
        )
    for key in (SINGLE, SCALEOUT):
        total = all_costs.get(key, {}).get("work")
        if total:
            lines.append(f"{NAMES[key]} work: " + ", ".join(f"{k} {v:,.0f}" for k, v in total.items()))
    lines.append(
        "web per message and per delivery, PostgreSQL per message and per confirmation, and the mixes: least\n"
        "squares over the points; the rest: totals divided. 2 shared cores, noisy: read the order of magnitude."
    )
    return "\n".join(lines)


def render(results: dict[str, Any]) -> str:
    """The scale-out's tables."""
    settings = results["settings"]
    scale = settings["scaleout"]
    lines = [
        f"Scale-out ({scale['brokers']} Kafka node(s), {scale['partitions']} partitions, {scale['bridges']} bridges, "
        f"{scale['web_processes']} web processes ({scale['web_processes_with_sockets']} with sockets), "
        f"{scale['redis']} Redis shards) beside the single node ({settings['single']['web_processes']} web "
        f"processes, 1 bridge, 1 broker, 1 Redis); {settings['point_seconds']:.0f} s per point, "
        f"{settings['cpu_count']} cores, load average {settings['load_average_at_start'][0]:.1f} at the start",
        "",
        side_by_side(results["points"]),
        "",
        cpu_table(results["points"]),
        "",
        cost_table(results.get("costs") or costs(results)),
    ]
    for key, seq in results.get("seq", {}).items():
        if seq:
            lines.append(f"{NAMES[key]} fan-out group seq: {seq['messages']} messages, gapless {seq['gapless']}")
    lines.append(f"idle CPU (cores): {results.get('idle')}")
    if results.get("errors"):
        lines.append("errors: " + "; ".join(results["errors"]))
    return "\n".join(lines)
