"""Figures of the benchmark suite: from the load client's raw records to the tables, the goals and the plot.

Each full-path point is shown beside its baseline from the same run (the
same clients, interleaved): tutorial+INSERT for direct pairs, the tutorial
room for groups. Ratios are full path / baseline.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

TARGET_ORDER = ("tutorial", "insert", "full", "sqlite")
TARGET_NAMES = {
    "full": "full path",
    "tutorial": "tutorial",
    "insert": "tutorial+INSERT",
    "sqlite": "full path SQLite",
    # The scale-out run's (benchmarks/scaleout.py).
    "single": "single node",
    "scaleout": "scale-out",
}
SCENARIO_ORDER = ("idle", "direct", "busy group", "fan-out", "overload", "sqlite")
# The baseline of each scenario's full-path rows; SQLite's is tutorial+INSERT's direct point at the same rate.
BASELINE_OF = {
    "idle": "insert",
    "direct": "insert",
    "busy group": "tutorial",
    "fan-out": "tutorial",
    "sqlite": "insert",
}
BASELINE_SCENARIO = {"sqlite": "direct"}
ROLES = ("web", "bridge", "kafka", "postgres", "redis", "client")
ROLE_SHORT = {"web": "web", "bridge": "brg", "kafka": "kfk", "postgres": "pg", "redis": "rds", "client": "cli"}
# A point "kept up" when it delivered at least this share of the offered rate and lost nothing.
KEPT_UP = 0.97
WINDOWS = 6


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile (0 for no values)."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(p / 100 * len(ordered)) - 1))]


def distribution_ms(seconds: list[float]) -> dict[str, float]:
    """p50/p95/p99/max (ms) and the count of samples in seconds."""
    ordered = sorted(seconds)
    return {
        "p50": round(percentile(ordered, 50) * 1000, 2),
        "p95": round(percentile(ordered, 95) * 1000, 2),
        "p99": round(percentile(ordered, 99) * 1000, 2),
        "max": round((ordered[-1] if ordered else 0.0) * 1000, 2),
        "n": len(ordered),
    }


def summarize(records: list[dict[str, Any]], receivers: Callable[[int], list[int]]) -> dict[str, Any]:
    """Join the client processes' records of one point into its figures."""
    start = min(r["start"] for r in records)
    end_send = max(r["end_send"] for r in records)
    final_sync = min(r["final_sync"] for r in records)
    sends = {k: (number, due, sent_at) for r in records for k, number, due, sent_at in r["sends"]}
    acks = {k: (at, kind, retry_after) for r in records for k, at, kind, retry_after in r["acks"]}
    arrivals = {(socket, k): rest for r in records for socket, k, *rest in r["arrivals"]}
    replies: Counter = Counter()
    latencies: list[float] = []
    by_due: list[tuple[float, float]] = []
    ack_latencies: list[float] = []
    lags: list[float] = []
    lost_sample: list[list[int]] = []
    lost = unresolved = by_sync = dup = dup_live = extra = unacked_delivered = live = 0
    last_live = last_ack = start
    fanout = len(receivers(0))
    for k, (number, due, sent_at) in sends.items():
        lags.append(sent_at - due)
        at, kind, retry_after = acks.get(k, (None, "no reply", None))
        replies[kind] += 1
        if kind == "ack":
            ack_latencies.append(at - sent_at)
            last_ack = max(last_ack, at)
        elif kind == "rate_limited" and isinstance(retry_after, int | float):
            replies["rate_limited with retryAfterMs"] += 1
        for socket in receivers(number):
            arrival = arrivals.pop((socket, k), None)
            if arrival is None:
                if kind == "ack" and at > final_sync:
                    unresolved += 1  # stored after the final sync may have looked
                elif kind == "ack":
                    lost += 1
                    if len(lost_sample) < 10:
                        lost_sample.append([socket, k])
                continue
            first_live, copies_live, copies_sync, ids = arrival
            if first_live is not None:
                live += 1
                latencies.append(first_live - sent_at)
                by_due.append((due - start, first_live - sent_at))
                last_live = max(last_live, first_live)
            elif copies_sync:
                by_sync += 1
            dup += max(0, copies_live + copies_sync - 1)
            dup_live += max(0, copies_live - 1)
            extra += max(0, ids - 1)
            unacked_delivered += kind != "ack"
    # Arrivals that match no send to that socket are extra messages even after de-duplication.
    extra += sum(rest[3] for rest in arrivals.values())
    acked = replies["ack"]
    span = max(r["end_send"] - r["start"] for r in records)
    confirm_frames = sum(r.get("confirm_frames", 0) for r in records)
    windows = []
    for index in range(WINDOWS):
        low, high = span * index / WINDOWS, span * (index + 1) / WINDOWS
        part = [latency for due, latency in by_due if low <= due < high]
        windows.append({"from_s": round(low, 1), "n": len(part), **distribution_ms(part)})
    return {
        "sent": len(sends),
        "acked": acked,
        "replies": dict(replies),
        "received_per_s": round(live / max(fanout, 1) / max(last_live - start, 1e-9), 1) if live else 0.0,
        "deliveries_per_s": round(live / max(last_live - start, 1e-9), 1) if live else 0.0,
        "acked_per_s": round(acked / max(last_ack - start, 1e-9), 1) if acked else 0.0,
        "deliveries_live": live,
        "fanout": fanout,
        "latency_ms": distribution_ms(latencies),
        "ack_ms": distribution_ms(ack_latencies),
        "lost": lost,
        "lost_sample": lost_sample,
        "unresolved": unresolved,
        "by_sync": by_sync,
        "dup": dup,
        # Repeats pushed live (the server sending again what it already sent), not brought by the final sync.
        "dup_live": dup_live,
        "extra_after_dedup": extra,
        "delivered_without_ack": unacked_delivered,
        "client_lag_ms": {"p99": round(percentile(lags, 99) * 1000, 2), "max": round(max(lags, default=0) * 1000, 2)},
        "send_seconds": round(end_send - start, 2),
        "acks_done_s": round(max(r["end_acks"] for r in records) - start, 2),
        "final_sync_s": round(final_sync - start, 2),
        "windows": windows,
        "held_back": sum(r.get("held_back", 0) for r in records),
        "confirm_frames": confirm_frames,
        "confirm_per_s": round(confirm_frames / max(span, 1e-9), 1),
        "confirm_errors": dict(sum((Counter(r.get("confirm_errors", {})) for r in records), Counter())),
        "watermark_gaps": sum(r.get("watermark_gaps", 0) for r in records),
        "own_back": sum(r.get("own_back", 0) for r in records),
        "other_frames": sum(r["other_frames"] for r in records),
        "reconnects": sum(r["reconnects"] for r in records),
        "close_codes": dict(Counter(str(code) for r in records for code in r["close_codes"])),
        "sync_errors": [e for r in records for e in r["sync_errors"]][:5],
    }


### Text ###


def fmt(value: float | None, digits: int = 1) -> str:
    """A number for the table ('-' for none)."""
    return "-" if value is None else f"{value:.{digits}f}"


def fmt_ms(value: float | None) -> str:
    """Milliseconds: one decimal below 100, none above ('-' for none)."""
    if value is None:
        return "-"
    return f"{value:,.0f}" if value >= 100 else f"{value:.1f}"


def fmt_ratio(value: float | None) -> str:
    """A ratio as '1.23x' ('-' for none)."""
    return "-" if value is None else f"{value:.2f}x"


def roles_cell(values: dict[str, float], roles: tuple[str, ...]) -> str:
    """Per-role figures joined by '/', '-' for a role the target has not."""
    return "/".join(f"{values[r]:.0f}" if r in values else "-" for r in roles)


def point_line(point: dict[str, Any]) -> str:
    """One line about a point, printed as it finishes."""
    lat, ack = point["latency_ms"], point["ack_ms"]
    db = point.get("db_work")
    return (
        f"in {point['point_s']:.0f} s: received {point['received_per_s']:.0f}/s, "
        f"p50 {lat['p50']:.1f} ms, p99 {lat['p99']:.1f} ms, "
        f"max {lat['max']:.0f} ms, ack p99 {ack['p99']:.1f} ms, lost {point['lost']}, by sync {point['by_sync']}, "
        f"dup {point['dup']} ({point['dup_live']} live), replies {point['replies']}, "
        f"confirmations {point['confirm_frames']}"
        + (f" (errors {point['confirm_errors']})" if point["confirm_errors"] else "")
        + (f", held back {point['held_back']}" if point["held_back"] else "")
        + (f", unresolved {point['unresolved']}" if point["unresolved"] else "")
        + (f", watermarks stuck at a gap {point['watermark_gaps']}" if point["watermark_gaps"] else "")
        + (f", own messages sent back {point['own_back']}" if point["own_back"] else "")
        + (f", reconnects {point['reconnects']} {point['close_codes']}" if point["reconnects"] else "")
        + (f", sync errors {point['sync_errors']}" if point["sync_errors"] else "")
        + (
            f"; database: {db['per_message']} statements per message, {db['per_confirmation']} per confirmation"
            if db
            else ""
        )
    )


def storm_line(storm: dict[str, Any]) -> str:
    """The storm's figures in one line."""
    return (
        f"{storm.get('sockets')} sockets: every sync.done after {storm.get('seconds_to_all_sync_done', 0):.1f} s, "
        f"failed {storm.get('failed')}, per socket p50 {storm.get('sync_done_p50', 0) * 1000:.0f} ms / "
        f"p99 {storm.get('sync_done_p99', 0) * 1000:.0f} ms; idle: web RSS {storm.get('idle_rss_mb', 0):.0f} MB, "
        f"web CPU {storm.get('idle_cpu_percent', 0):.1f}% of a core"
    )


def sort_key(point: dict[str, Any]) -> tuple:
    """Rows by scenario, target, rate."""
    return (SCENARIO_ORDER.index(point["scenario"]), TARGET_ORDER.index(point["target"]), point["offered"])


def find(points: list[dict[str, Any]], scenario: str, target: str, rate: float | None = None) -> dict | None:
    """The point of a scenario and target (at a rate)."""
    for point in points:
        if point["scenario"] == scenario and point["target"] == target and rate in (None, point["offered"]):
            return point
    return None


def ratio(a: float | None, b: float | None) -> float | None:
    """a / b, or None."""
    return None if a is None or not b else a / b


def baseline_of(points: list[dict[str, Any]], point: dict[str, Any]) -> dict[str, Any] | None:
    """The baseline point a full-path point is compared with (same run, same clients, same rate)."""
    name = BASELINE_OF.get(point["scenario"])
    scenario = BASELINE_SCENARIO.get(point["scenario"], point["scenario"])
    return find(points, scenario, name, point["offered"]) if name else None


def comparison(points: list[dict[str, Any]]) -> str:
    """The main table: each full-path row beside its baseline, with the ratios."""
    head = (
        f"{'scenario':<10} {'offered':>7}  {'baseline':<15} | {'received/s':^22} | {'p50 ms':^23} | "
        f"{'p99 ms':^25} | {'ack p99 ms':^16} | {'lost':^11}"
    )
    sub = (
        f"{'':<10} {'msg/s':>7}  {'':<15} | {'full':>7} {'base':>7} {'ratio':>6} | {'full':>7} {'base':>7} "
        f"{'ratio':>7} | {'full':>8} {'base':>7} {'ratio':>8} | {'full':>7} {'base':>8} | {'full':>5} {'base':>5}"
    )
    lines = [head, sub, "-" * len(sub)]
    for point in sorted((p for p in points if p["target"] in ("full", "sqlite")), key=sort_key):
        other = baseline_of(points, point)
        lat, base_lat = point["latency_ms"], (other or {}).get("latency_ms", {})
        base_recv = other["received_per_s"] if other else None
        lines.append(
            f"{point['scenario']:<10} {point['offered']:>7.0f}  "
            f"{TARGET_NAMES[other['target']] if other else '-':<15} | "
            f"{point['received_per_s']:>7.1f} {fmt(base_recv):>7} "
            f"{fmt_ratio(ratio(point['received_per_s'], base_recv)):>6} | "
            f"{fmt_ms(lat['p50']):>7} {fmt_ms(base_lat.get('p50')):>7} "
            f"{fmt_ratio(ratio(lat['p50'], base_lat.get('p50'))):>7} | "
            f"{fmt_ms(lat['p99']):>8} {fmt_ms(base_lat.get('p99')):>7} "
            f"{fmt_ratio(ratio(lat['p99'], base_lat.get('p99'))):>8} | "
            f"{fmt_ms(point['ack_ms']['p99']):>7} {fmt_ms(other['ack_ms']['p99'] if other else None):>8} | "
            f"{point['lost']:>5} {other['lost'] if other else '-':>5}"
        )
    lines.append(
        "full: the full path (SQLite's row: on SQLite); base: its baseline from the same run; ratio: full / base;\n"
        "latency: send -> the receiver's message.new; ack: send -> message.ack; lost: acked, never received"
    )
    return "\n".join(lines)


def table(points: list[dict[str, Any]]) -> str:
    """Every point with what it cost: a row per scenario x target x offered rate."""
    head = (
        f"{'scenario':<10} {'target':<16} {'offered':>7} {'recv/s':>7} {'p50':>6} {'p95':>6} {'p99':>7} "
        f"{'max':>7} {'ack99':>6} {'lost':>5} {'sync':>5} {'unres':>5} {'dup':>4} {'conf/s':>6}  "
        f"{'CPU % ' + '/'.join(ROLE_SHORT[r] for r in ROLES):<26} {'RSS MB ' + '/'.join(ROLE_SHORT[r] for r in ROLES)}"
    )
    lines = [head, "-" * len(head)]
    for p in sorted(points, key=sort_key):
        lat = p["latency_ms"]
        lines.append(
            f"{p['scenario']:<10} {TARGET_NAMES[p['target']]:<16} {p['offered']:>7.0f} {p['received_per_s']:>7.1f} "
            f"{lat['p50']:>6.1f} {lat['p95']:>6.1f} {lat['p99']:>7.1f} {lat['max']:>7.0f} "
            f"{p['ack_ms']['p99']:>6.1f} {p['lost']:>5} {p['by_sync']:>5} {p['unresolved']:>5} {p['dup']:>4} "
            f"{p['confirm_per_s']:>6.0f}  "
            f"{roles_cell(p['cpu_percent'], ROLES):<26} {roles_cell(p['rss_mb'], ROLES)}"
        )
    lines.append(
        "latencies in ms; sync: brought by the final sync; unres: acked too late to judge; dup: repeated "
        "message.new;\nconf/s: message.received frames a second; CPU in % of one core during the sends; RSS peak; "
        "both summed over each role's processes"
    )
    return "\n".join(lines)


def capacity(points: list[dict[str, Any]], target: str, scenario: str = "direct") -> tuple[float, bool]:
    """The best received rate of a target's ladder in a scenario, and whether it kept up at the top rate too."""
    sweep = [p for p in points if p["target"] == target and p["scenario"] == scenario]
    if not sweep:
        return 0.0, False
    top = max(sweep, key=lambda p: p["offered"])
    return max(p["received_per_s"] for p in sweep), kept_up(top)


def kept_up(point: dict[str, Any]) -> bool:
    """Whether a point delivered what was offered, with nothing lost."""
    return point["received_per_s"] >= KEPT_UP * point["offered"] and point["lost"] == point["unresolved"] == 0


def capacity_cell(points: list[dict[str, Any]], target: str, scenario: str) -> str:
    """A capacity as text: '+' when the target kept up even at the top rate (so it may do more)."""
    value, top = capacity(points, target, scenario)
    return f"{value:.0f}{'+' if top else ''}"


def db_work_text(points: list[dict[str, Any]], top: int = 10) -> list[str]:
    """The database work of the points where it was counted, with the top statements by calls."""
    lines = []
    for point in sorted((p for p in points if p.get("db_work")), key=sort_key):
        db = point["db_work"]
        lines += [
            f"  {point['scenario']} at {point['offered']:.0f} msg/s: {db['statements']:,} statements "
            f"({db['transaction_control']:,} of them BEGIN/COMMIT/SAVEPOINT) for {db['sent']:,} messages sent and "
            f"{db['confirmation_frames']:,} confirmation frames: {fmt(db['per_message'], 2)} per message sent, "
            f"{fmt(db['per_confirmation'], 2)} per confirmation frame",
            f"    {'calls':>8} {'/msg':>6} {'/conf':>6}  statement",
        ]
        for statement in db["top"][:top]:
            lines.append(
                f"    {statement['calls']:>8,} {fmt(statement['per_message'], 2):>6} "
                f"{fmt(statement['per_confirmation'], 2):>6}  {statement['query'][:110]}"
            )
    if lines:
        lines.insert(0, "database work (pg_stat_statements, full path; both ratios divide the same statements):")
    return lines


def goals(points: list[dict[str, Any]], extra: dict[str, Any], settings: dict[str, Any]) -> list[dict[str, Any]]:
    """The project's goals next to what was measured (met: True, False, or None when not measured)."""
    out: list[dict[str, Any]] = []

    def add(goal: str, measured: str, met: bool | None) -> None:
        out.append({"goal": goal, "measured": measured, "met": met})

    def pair(scenario: str, rate: float | None = None) -> tuple[dict | None, dict | None]:
        full = find(points, scenario, "full", rate)
        return full, baseline_of(points, full) if full else None

    full, base = pair("idle")
    if full and base:
        add(
            "idle: p50 within 2x tutorial+INSERT's",
            f"{full['latency_ms']['p50']:.1f} vs {base['latency_ms']['p50']:.1f} ms "
            f"({fmt_ratio(ratio(full['latency_ms']['p50'], base['latency_ms']['p50']))})",
            full["latency_ms"]["p50"] <= 2 * base["latency_ms"]["p50"],
        )
    else:
        add("idle: p50 within 2x tutorial+INSERT's", "not measured", None)

    direct_rate = settings.get("direct_rate", 200)
    full, base = pair("direct", direct_rate)
    if full and base:
        p99, base_p99 = full["latency_ms"]["p99"], base["latency_ms"]["p99"]
        add(
            f"{direct_rate} msg/s direct: p99 within 2x tutorial+INSERT's and under 30 ms",
            f"{p99:.1f} vs {base_p99:.1f} ms ({fmt_ratio(ratio(p99, base_p99))})",
            p99 <= 2 * base_p99 and p99 < 30,
        )
        add(
            f"{direct_rate} msg/s direct: ack p99 under 20 ms",
            f"{full['ack_ms']['p99']:.1f} ms",
            full["ack_ms"]["p99"] < 20,
        )
    else:
        add(f"{direct_rate} msg/s direct: latency", "not measured", None)

    full_cap, full_top = capacity(points, "full", "direct")
    insert_cap, _ = capacity(points, "insert", "direct")
    if full_cap and insert_cap:
        add(
            "direct capacity >= tutorial+INSERT's",
            f"{capacity_cell(points, 'full', 'direct')} vs {capacity_cell(points, 'insert', 'direct')} msg/s",
            full_cap >= KEPT_UP * insert_cap or full_top,
        )
    else:
        add("direct capacity >= tutorial+INSERT's", "not measured", None)

    group_rates = settings.get("group", {}).get("rates") or [None]
    full, base = pair("busy group", group_rates[0])
    if full and base:
        p99, base_p99 = full["latency_ms"]["p99"], base["latency_ms"]["p99"]
        add(
            f"busy group at {full['offered']:.0f} msg/s: p99 within 3x the tutorial room's",
            f"{p99:.1f} vs {base_p99:.1f} ms ({fmt_ratio(ratio(p99, base_p99))}), lost {full['lost']}",
            p99 <= 3 * base_p99,
        )
    else:
        add("busy group: p99 within 3x the tutorial room's", "not measured", None)
    full_cap, full_top = capacity(points, "full", "busy group")
    room_cap, _ = capacity(points, "tutorial", "busy group")
    if full_cap and room_cap:
        add(
            "busy group capacity >= 0.7x the tutorial room's",
            f"{capacity_cell(points, 'full', 'busy group')} vs {capacity_cell(points, 'tutorial', 'busy group')} "
            f"msg/s ({fmt_ratio(ratio(full_cap, room_cap))})",
            full_cap >= 0.7 * room_cap or full_top,
        )
    else:
        add("busy group capacity >= 0.7x the tutorial room's", "not measured", None)
    seq = extra.get("busy_group_seq") or {}
    add(
        "busy group seq gapless (database)",
        f"{seq.get('messages')} messages, seq {seq.get('min')}..{seq.get('max')}, last_seq {seq.get('last_seq')}"
        if seq
        else "not measured",
        seq.get("gapless") if seq else None,
    )

    full, base = pair("fan-out")
    if full and base:
        p99, base_p99 = full["latency_ms"]["p99"], base["latency_ms"]["p99"]
        add(
            f"fan-out ({full['fanout'] + 1} members): 0 lost and p99 within 2x the tutorial room's",
            f"lost {full['lost']} (unresolved {full['unresolved']}), {p99:.1f} vs {base_p99:.1f} ms "
            f"({fmt_ratio(ratio(p99, base_p99))}), {full['deliveries_per_s']:,.0f} vs "
            f"{base['deliveries_per_s']:,.0f} deliveries/s",
            full["lost"] == 0 and p99 <= 2 * base_p99,
        )
    else:
        add("fan-out: 0 lost and p99 within 2x the tutorial room's", "not measured", None)

    overload = find(points, "overload", "full")
    if overload:
        series = [sample["web"] for _t, sample in overload["rss_series"] if "web" in sample]
        replies = overload["replies"]
        limited = replies.get("rate_limited", 0)
        add(
            "overload: ack p99 under 2 s",
            f"{overload['ack_ms']['p99']:,.0f} ms at {overload['offered']:.0f} msg/s offered",
            overload["ack_ms"]["p99"] < 2000,
        )
        add(
            "overload: 0 lost",
            f"{overload['acked']} acked, lost {overload['lost']} (unresolved {overload['unresolved']}), "
            f"{limited} rate_limited, {overload['held_back']} held back",
            overload["lost"] == 0,
        )
        if series:
            half = series[len(series) // 2 :]
            add(
                "overload: web memory flat",
                f"start {series[0]:.0f}, peak {max(series):.0f}, end {series[-1]:.0f} MB",
                max(half) <= 1.1 * max(series[: max(1, len(series) // 2)]) + 20,
            )
        add(
            "overload: every rate_limited reply carries retryAfterMs",
            f"{limited} rate_limited, {replies.get('rate_limited with retryAfterMs', 0)} with retryAfterMs",
            limited == replies.get("rate_limited with retryAfterMs", 0) if limited else None,
        )
    else:
        add("overload", "not measured", None)

    sqlite = find(points, "sqlite", "sqlite")
    add(
        f"SQLite: {sqlite['offered']:.0f} msg/s direct p99 under 100 ms" if sqlite else "SQLite: p99 under 100 ms",
        f"{sqlite['received_per_s']:.0f} msg/s received, p99 {sqlite['latency_ms']['p99']:.1f} ms, "
        f"lost {sqlite['lost']}"
        if sqlite
        else "not measured",
        sqlite["latency_ms"]["p99"] < 100 if sqlite else None,
    )

    storm = extra.get("storm") or {}
    if storm:
        done = storm.get("seconds_to_all_sync_done", 0.0)
        add(
            f"storm: {storm.get('sockets')} sockets sync.done within 20 s",
            f"{done:.1f} s, {storm.get('failed')} failed",
            done <= 20 and not storm.get("failed"),
        )
        add("storm idle: web RSS < 1 GiB", f"{storm.get('idle_rss_mb', 0):.0f} MB", storm.get("idle_rss_mb", 0) < 1024)
        add(
            "storm idle: web CPU < 10% of a core",
            f"{storm.get('idle_cpu_percent', 0):.1f}%",
            storm.get("idle_cpu_percent", 0) < 10,
        )
    else:
        add("reconnect storm", "not measured", None)
    return out


def render(data: dict[str, Any]) -> str:
    """The whole printed report: the comparison, every point, database work, overload, storm, goals."""
    points = data["points"]
    parts = [comparison(points)]
    caps = []
    for scenario, targets in (("direct", ("full", "insert")), ("busy group", ("full", "tutorial"))):
        cells = [
            f"{TARGET_NAMES[t]} {capacity_cell(points, t, scenario)}"
            for t in targets
            if capacity(points, t, scenario)[0]
        ]
        if cells:
            caps.append(f"  {scenario}: " + ", ".join(cells))
    if caps:
        parts += ["", "capacity (best received msg/s of the ladder; +: kept up even at the top rate):", *caps]
    fanout = [p for p in points if p["scenario"] == "fan-out"]
    if fanout:
        parts.append(
            "fan-out deliveries/s: "
            + ", ".join(
                f"{TARGET_NAMES[p['target']]} {p['deliveries_per_s']:,.0f}" for p in sorted(fanout, key=sort_key)
            )
        )
    for skipped in data.get("skipped", []):
        parts.append(f"skipped: {skipped}")
    parts += ["", "every point:", table(points)]
    db_lines = db_work_text(points)
    if db_lines:
        parts += ["", *db_lines]
    overload = find(points, "overload", "full")
    if overload:
        series = [sample.get("web", 0.0) for _t, sample in overload["rss_series"]]
        parts += [
            "",
            f"overload: offered {overload['offered']:.0f} msg/s for {overload['duration']:.0f} s "
            f"(measured capacity {overload.get('capacity_measured', 0):.0f}): replies {overload['replies']}, "
            f"held back by retryAfterMs {overload['held_back']}, lost {overload['lost']}, "
            f"by sync {overload['by_sync']}; sends ended {overload['send_seconds']:.0f} s after the start "
            f"(client lag p99 {overload['client_lag_ms']['p99']:.0f} ms), the last ack came after "
            f"{overload['acks_done_s']:.0f} s",
            "  web RSS MB every second: " + " ".join(f"{v:.0f}" for v in series),
        ]
    if data.get("storm"):
        parts += ["", "reconnect storm: " + storm_line(data["storm"])]
    for key, name in (("busy_group_seq", "busy group"), ("fanout_seq", "fan-out group")):
        if data.get(key):
            parts.append(f"{name} in the database: {data[key]}")
    parts += ["", "goals (printed, not asserted):"]
    for goal in data["goals"]:
        mark = {True: "met", False: "NOT MET", None: "n/a"}[goal["met"]]
        parts.append(f"  [{mark:^7}] {goal['goal']}: {goal['measured']}")
    if data.get("errors"):
        parts += ["", "errors:", *(f"  {e}" for e in data["errors"])]
    return "\n".join(parts)


### Plot ###


def plot(data: dict[str, Any], path: Path) -> Path:
    """Draw p50 and p99 latency against offered rate, one line per target, log y; return the file."""
    import logging

    import matplotlib

    logging.getLogger("matplotlib").setLevel(logging.WARNING)
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colours = {"tutorial": "tab:green", "insert": "tab:orange", "full": "tab:blue", "sqlite": "tab:red"}
    figure, axes = plt.subplots(figsize=(8, 5))
    for target in TARGET_ORDER:
        sweep = sorted(
            (p for p in data["points"] if p["target"] == target and p["scenario"] in ("direct", "sqlite")),
            key=lambda p: p["offered"],
        )
        if not sweep:
            continue
        rates = [p["offered"] for p in sweep]
        name, colour = TARGET_NAMES[target], colours[target]
        axes.plot(rates, [p["latency_ms"]["p99"] for p in sweep], "o-", color=colour, label=f"{name} p99")
        axes.plot(rates, [p["latency_ms"]["p50"] for p in sweep], "s--", color=colour, label=f"{name} p50")
    axes.axhline(30, color="grey", linestyle="-.", linewidth=1, label="goal: p99 < 30 ms at 200/s")
    axes.set_yscale("log")
    axes.set_xlabel("offered rate (msg/s)")
    axes.set_ylabel("send -> message.new (ms)")
    axes.set_title("Latency against offered rate (20 direct pairs, open loop)")
    axes.grid(True, which="both", alpha=0.3)
    axes.legend(fontsize="small")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path
