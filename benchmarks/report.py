"""Figures of the benchmark suite: from the load client's raw records to the table, the goals and the plot."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

TARGET_ORDER = ("tutorial", "insert", "full", "sqlite")
TARGET_NAMES = {"full": "full path", "tutorial": "tutorial", "insert": "tutorial+INSERT", "sqlite": "full path SQLite"}
SCENARIO_ORDER = ("rate", "busy group", "sustained", "overload", "sqlite")
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
    lost = unresolved = by_sync = dup = extra = unacked_delivered = live = 0
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
            extra += max(0, ids - 1)
            unacked_delivered += kind != "ack"
    # Arrivals that match no send to that socket are extra messages even after de-duplication.
    extra += sum(rest[3] for rest in arrivals.values())
    acked = replies["ack"]
    span = max(r["end_send"] - r["start"] for r in records)
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
        "extra_after_dedup": extra,
        "delivered_without_ack": unacked_delivered,
        "client_lag_ms": {"p99": round(percentile(lags, 99) * 1000, 2), "max": round(max(lags, default=0) * 1000, 2)},
        "send_seconds": round(end_send - start, 2),
        "acks_done_s": round(max(r["end_acks"] for r in records) - start, 2),
        "final_sync_s": round(final_sync - start, 2),
        "windows": windows,
        "other_frames": sum(r["other_frames"] for r in records),
        "reconnects": sum(r["reconnects"] for r in records),
        "close_codes": dict(Counter(str(code) for r in records for code in r["close_codes"])),
        "sync_errors": [e for r in records for e in r["sync_errors"]][:5],
    }


### Text ###


def fmt(value: float | None, digits: int = 1) -> str:
    """A number for the table ('-' for none)."""
    return "-" if value is None else f"{value:.{digits}f}"


def roles_cell(values: dict[str, float], roles: tuple[str, ...]) -> str:
    """Per-role figures joined by '/', '-' for a role the target has not."""
    return "/".join(f"{values[r]:.0f}" if r in values else "-" for r in roles)


def point_line(point: dict[str, Any]) -> str:
    """One line about a point, printed as it finishes."""
    lat, ack = point["latency_ms"], point["ack_ms"]
    return (
        f"received {point['received_per_s']:.0f}/s, p50 {lat['p50']:.1f} ms, p99 {lat['p99']:.1f} ms, "
        f"max {lat['max']:.0f} ms, ack p99 {ack['p99']:.1f} ms, lost {point['lost']}, by sync {point['by_sync']}, "
        f"dup {point['dup']}, replies {point['replies']}"
        + (f", unresolved {point['unresolved']}" if point["unresolved"] else "")
        + (f", reconnects {point['reconnects']} {point['close_codes']}" if point["reconnects"] else "")
        + (f", sync errors {point['sync_errors']}" if point["sync_errors"] else "")
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


def table(points: list[dict[str, Any]]) -> str:
    """The one table: a row per scenario x target x offered rate."""
    head = (
        f"{'scenario':<11} {'target':<17} {'offered':>7} {'recv/s':>7} {'p50':>6} {'p95':>6} {'p99':>7} "
        f"{'max':>7} {'ack99':>6} {'lost':>5} {'sync':>5} {'unres':>5} {'dup':>4}  "
        f"{'CPU % ' + '/'.join(ROLE_SHORT[r] for r in ROLES):<26} {'RSS MB ' + '/'.join(ROLE_SHORT[r] for r in ROLES)}"
    )
    lines = [head, "-" * len(head)]
    for p in sorted(points, key=sort_key):
        lat = p["latency_ms"]
        lines.append(
            f"{p['scenario']:<11} {TARGET_NAMES[p['target']]:<17} {p['offered']:>7.0f} {p['received_per_s']:>7.1f} "
            f"{lat['p50']:>6.1f} {lat['p95']:>6.1f} {lat['p99']:>7.1f} {lat['max']:>7.0f} "
            f"{p['ack_ms']['p99']:>6.1f} {p['lost']:>5} {p['by_sync']:>5} {p['unresolved']:>5} {p['dup']:>4}  "
            f"{roles_cell(p['cpu_percent'], ROLES):<26} {roles_cell(p['rss_mb'], ROLES)}"
        )
    lines.append(
        "latencies in ms (send -> message.new; ack99: send -> message.ack); lost: acked, never received; sync: "
        "brought by the final sync;\nunres: acked too late to judge; dup: repeated message.new; CPU in % of one core "
        "during the sends; RSS peak; both summed over each role's processes"
    )
    return "\n".join(lines)


def find(points: list[dict[str, Any]], scenario: str, target: str, rate: float | None = None) -> dict | None:
    """The point of a scenario and target (at a rate)."""
    for point in points:
        if point["scenario"] == scenario and point["target"] == target and rate in (None, point["offered"]):
            return point
    return None


def ratio(a: float | None, b: float | None) -> float | None:
    """a / b, or None."""
    return None if a is None or not b else a / b


def ratios(points: list[dict[str, Any]]) -> str:
    """The full path against each baseline, per scenario and rate."""
    lines = [
        "full path vs baselines (throughput ratio: received/s; latency ratio: p99)",
        f"{'scenario':<11} {'offered':>7}   {'vs tutorial+INSERT':>22}   {'vs tutorial':>22}",
    ]
    rows = sorted({(p["scenario"], p["offered"]) for p in points if p["target"] == "full"}, key=lambda r: r[1])
    for scenario, rate in sorted(rows, key=lambda r: SCENARIO_ORDER.index(r[0])):
        full = find(points, scenario, "full", rate)
        cells = []
        for baseline in ("insert", "tutorial"):
            other = find(points, scenario, baseline, rate)
            if full is None or other is None:
                cells.append(f"{'-':>22}")
                continue
            thr = ratio(full["received_per_s"], other["received_per_s"])
            p99 = ratio(full["latency_ms"]["p99"], other["latency_ms"]["p99"])
            cells.append(f"{'thr ' + fmt(thr, 2) + 'x, p99 ' + fmt(p99, 1) + 'x':>22}")
        if any(c.strip() != "-" for c in cells):
            lines.append(f"{scenario:<11} {rate:>7.0f}   {cells[0]}   {cells[1]}")
    return "\n".join(lines)


def capacity(points: list[dict[str, Any]], target: str) -> tuple[float, bool]:
    """The best received rate of a target's rate sweep, and whether it kept up at the top rate too."""
    sweep = [p for p in points if p["target"] == target and p["scenario"] in ("rate", "sustained")]
    if not sweep:
        return 0.0, False
    top = max(sweep, key=lambda p: p["offered"])
    return max(p["received_per_s"] for p in sweep), kept_up(top)


def kept_up(point: dict[str, Any]) -> bool:
    """Whether a point delivered what was offered, with nothing lost."""
    return point["received_per_s"] >= KEPT_UP * point["offered"] and point["lost"] == point["unresolved"] == 0


def goals(points: list[dict[str, Any]], extra: dict[str, Any]) -> list[dict[str, Any]]:
    """The project's goals next to what was measured (met: True, False, or None when not measured)."""
    out: list[dict[str, Any]] = []

    def add(goal: str, measured: str, met: bool | None) -> None:
        out.append({"goal": goal, "measured": measured, "met": met})

    sustained = find(points, "sustained", "full")
    skipped = [note for note in extra.get("skipped", []) if "sustained" in note]
    if sustained:
        add(
            "full path sustains >= 500 msg/s for 60 s with 0 lost",
            f"{sustained['received_per_s']:.0f} msg/s over {sustained['duration']:.0f} s, lost {sustained['lost']}, "
            f"unresolved {sustained['unresolved']}",
            kept_up(sustained) and sustained["offered"] >= 500,
        )
    else:
        add(
            "full path sustains >= 500 msg/s for 60 s with 0 lost",
            skipped[0] if skipped else "not measured",
            False if skipped else None,
        )
    at200 = find(points, "rate", "full", 200)
    if at200:
        lat = at200["latency_ms"]
        add("at 200 msg/s p50 <= 10 ms", f"{lat['p50']:.1f} ms", lat["p50"] <= 10)
        add("at 200 msg/s p99 <= 30 ms", f"{lat['p99']:.1f} ms", lat["p99"] <= 30)
        add("at 200 msg/s ack p99 <= 20 ms", f"{at200['ack_ms']['p99']:.1f} ms", at200["ack_ms"]["p99"] <= 20)
    else:
        add("latency at 200 msg/s", "not measured", None)
    full_cap, full_top = capacity(points, "full")
    insert_cap, insert_top = capacity(points, "insert")
    if insert_cap:
        add(
            "capacity >= tutorial+INSERT",
            f"{full_cap:.0f}{'+' if full_top else ''} vs {insert_cap:.0f}{'+' if insert_top else ''} msg/s",
            full_cap >= KEPT_UP * insert_cap or full_top,
        )
    insert200 = find(points, "rate", "insert", 200)
    if at200 and insert200:
        add(
            "p99 at 200 msg/s within 2x of tutorial+INSERT",
            f"{at200['latency_ms']['p99']:.1f} vs {insert200['latency_ms']['p99']:.1f} ms",
            at200["latency_ms"]["p99"] <= 2 * insert200["latency_ms"]["p99"],
        )
    group = find(points, "busy group", "full")
    seq = extra.get("busy_group_seq") or {}
    if group:
        add(
            f"busy group >= 300 msg/s, 0 lost ({group['fanout'] + 1} members)",
            f"{group['received_per_s']:.0f} msg/s, lost {group['lost']}",
            group["received_per_s"] >= KEPT_UP * 300 and group["lost"] == 0,
        )
    add(
        "busy group seq gapless (database)",
        f"{seq.get('messages')} messages, seq {seq.get('min')}..{seq.get('max')}, last_seq {seq.get('last_seq')}"
        if seq
        else "not measured",
        seq.get("gapless") if seq else None,
    )
    overload = find(points, "overload", "full")
    if overload:
        series = [sample["web"] for _t, sample in overload["rss_series"] if "web" in sample]
        replies = overload["replies"]
        limited = replies.get("rate_limited", 0)
        add(
            "overload: every rate_limited error carries retryAfterMs",
            f"{limited} rate_limited, {replies.get('rate_limited with retryAfterMs', 0)} with retryAfterMs",
            limited == replies.get("rate_limited with retryAfterMs", 0) if limited else None,
        )
        add("overload: 0 lost", f"{overload['acked']} acked, lost {overload['lost']}", overload["lost"] == 0)
        if series:
            half = series[len(series) // 2 :]
            add(
                "overload: web RSS bounded",
                f"start {series[0]:.0f}, peak {max(series):.0f}, end {series[-1]:.0f} MB",
                max(half) <= 1.1 * max(series[: max(1, len(series) // 2)]) + 20,
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
    sqlite = find(points, "sqlite", "sqlite")
    add(
        "SQLite: >= 200 msg/s at p99 <= 50 ms",
        f"{sqlite['received_per_s']:.0f} msg/s, p99 {sqlite['latency_ms']['p99']:.1f} ms, lost {sqlite['lost']}"
        if sqlite
        else "not measured",
        (kept_up(sqlite) and sqlite["offered"] >= 200 and sqlite["latency_ms"]["p99"] <= 50) if sqlite else None,
    )
    return out


def render(data: dict[str, Any]) -> str:
    """The whole printed report: table, ratios, overload, storm, goals."""
    points = data["points"]
    parts = [table(points), "", ratios(points)]
    caps = []
    for target in ("full", "insert", "tutorial"):
        value, top = capacity(points, target)
        if value:
            caps.append(f"{TARGET_NAMES[target]} {value:.0f}{'+ (kept up at the top rate)' if top else ''}")
    if caps:
        parts.append("capacity (best received msg/s of the sweep): " + ", ".join(caps))
    for skipped in data.get("skipped", []):
        parts.append(f"skipped: {skipped}")
    overload = find(points, "overload", "full")
    if overload:
        series = [sample.get("web", 0.0) for _t, sample in overload["rss_series"]]
        parts += [
            "",
            f"overload: offered {overload['offered']:.0f} msg/s for {overload['duration']:.0f} s "
            f"(measured capacity {overload.get('capacity_measured', 0):.0f}): replies {overload['replies']}, "
            f"lost {overload['lost']}, by sync {overload['by_sync']}",
            "  web RSS MB every second: " + " ".join(f"{v:.0f}" for v in series),
        ]
    sustained = find(points, "sustained", "full")
    if sustained:
        parts.append(
            "sustained p99 by window (ms): "
            + " ".join(f"{w['from_s']:.0f}s:{w['p99']:.1f}" for w in sustained["windows"] if w["n"])
        )
    if data.get("storm"):
        parts += ["", "reconnect storm: " + storm_line(data["storm"])]
    seq = data.get("busy_group_seq")
    if seq:
        parts.append(f"busy group in the database: {seq}")
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
            (p for p in data["points"] if p["target"] == target and p["scenario"] in ("rate", "sqlite")),
            key=lambda p: p["offered"],
        )
        if not sweep:
            continue
        rates = [p["offered"] for p in sweep]
        name, colour = TARGET_NAMES[target], colours[target]
        axes.plot(rates, [p["latency_ms"]["p99"] for p in sweep], "o-", color=colour, label=f"{name} p99")
        axes.plot(rates, [p["latency_ms"]["p50"] for p in sweep], "s--", color=colour, label=f"{name} p50")
    for name, goal, style in (("p50", 10, ":"), ("p99", 30, "-.")):
        axes.axhline(goal, color="grey", linestyle=style, linewidth=1, label=f"goal: {name} <= {goal} ms at 200/s")
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
