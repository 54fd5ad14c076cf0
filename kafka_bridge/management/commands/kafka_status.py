import json
from collections.abc import Sequence
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import DatabaseError

from kafka_bridge.operate.report import KafkaReport
from kafka_bridge.operate.report_reader import DEFAULT_TIMEOUT_SECONDS, kafka_report


def table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[str]:
    """Return the lines of a left-aligned table, two spaces between columns."""
    cells = [[str(c) for c in header], *([("-" if c is None else str(c)) for c in row] for row in rows)]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    return ["  " + "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells]


def render(report: KafkaReport) -> str:
    """Return the report as tables for people."""
    lines = [f"Broker {report.broker}: {'reachable' if report.reachable else 'UNREACHABLE'}"]
    lines.append(f"Outbox: {report.outbox_depth} record(s) waiting for the broker")
    if not report.reachable:
        return "\n".join(lines)
    lines += ["", "Topics"]
    lines += table(
        ["TOPIC", "PARTITION", "LEADER", "REPLICAS", "ISR", "START", "END", "RETENTION"],
        [
            [
                topic.name,
                p.partition,
                p.leader,
                ",".join(map(str, p.replicas)),
                ",".join(map(str, p.in_sync)),
                p.start_offset,
                p.end_offset,
                topic.retention,
            ]
            for topic in report.topics
            for p in topic.partitions
        ],
    )
    if report.missing_topics:
        lines.append(f"  missing (run kafka_topics): {', '.join(report.missing_topics)}")
    lines += ["", "Consumer groups"]
    for group in report.groups:
        members = ", ".join(group.members) or "no members"
        lines.append(
            f"  {group.group}: {group.state}, lag {group.lag} ({members}){' ' + group.error if group.error else ''}"
        )
        lines += [
            "  " + line
            for line in table(
                ["TOPIC", "PARTITION", "COMMITTED", "END", "LAG"],
                [[p.topic, p.partition, p.committed, p.end_offset, p.lag] for p in group.partitions],
            )
        ]
    lines += ["", "Dead letters"]
    lines += table(
        ["TOPIC", "DEAD-LETTER TOPIC", "TOTAL", "WAITING"],
        [[d.topic, d.dead_letter_topic, d.total, d.waiting] for d in report.dead_letters],
    )
    return "\n".join(lines)


class Command(BaseCommand):
    help = (
        "Show the Kafka broker, the topics, each consumer group's lag per partition, "
        "the dead letters and the outbox depth. Exits 1 when the broker is unreachable."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--json", action="store_true", help="Print JSON for scripts instead of tables.")
        parser.add_argument(
            "--group",
            default=None,
            help="Base consumer group the loops' suffixes are appended to (default: KAFKA_CONSUMER_GROUP).",
        )
        parser.add_argument(
            "--timeout",
            type=float,
            default=DEFAULT_TIMEOUT_SECONDS,
            help=f"Seconds to wait for the broker (default {DEFAULT_TIMEOUT_SECONDS:g}).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            report = kafka_report(group_base=options["group"], timeout=options["timeout"])
        except DatabaseError as exc:
            raise CommandError(f"Could not read the outbox: {exc}") from exc
        if options["json"]:
            self.stdout.write(json.dumps(report.as_json(), indent=2))
        else:
            self.stdout.write(render(report))
        if not report.reachable:
            raise CommandError(f"Kafka broker at {report.broker} is unreachable: {report.error}")
