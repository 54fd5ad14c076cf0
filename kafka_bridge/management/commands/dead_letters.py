from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from kafka_bridge.consume.registry import topic_named, topics
from kafka_bridge.operate.dead_letters import NothingToReplay, OffsetRange, read_dead_letters, replay_dead_letters


def parse_offset(raw: str) -> OffsetRange:
    """Parse PARTITION:OFFSET or PARTITION:FIRST-LAST."""
    partition, _, offsets = raw.partition(":")
    first, _, last = offsets.partition("-")
    try:
        offset_range = OffsetRange(int(partition), int(first), int(last or first))
    except ValueError:
        raise CommandError(f"--offset takes PARTITION:OFFSET or PARTITION:FIRST-LAST, not {raw!r}") from None
    if offset_range.partition < 0 or offset_range.first < 0 or offset_range.last < offset_range.first:
        raise CommandError(f"--offset {raw!r}: partition and offsets must be >= 0, FIRST <= LAST")
    return offset_range


class Command(BaseCommand):
    help = "List or replay records that the bridge parked in a dead-letter topic (<topic>.DLT)."

    def add_arguments(self, parser: CommandParser) -> None:
        names = sorted(t.name for t in topics())
        sub = parser.add_subparsers(dest="action", required=True)
        listing = sub.add_parser("list", help="Show dead letters waiting for replay.")
        listing.add_argument("topic", choices=names)
        listing.add_argument("--all", action="store_true", help="Include those already replayed.")
        replay = sub.add_parser(
            "replay", help="Send dead letters back to their original topic; exits 1 when there is nothing to replay."
        )
        replay.add_argument("topic", choices=names)
        which = replay.add_mutually_exclusive_group(required=True)
        which.add_argument("--all", action="store_true", help="Replay every waiting dead letter.")
        which.add_argument(
            "--offset",
            action="append",
            help="PARTITION:OFFSET or PARTITION:FIRST-LAST of waiting dead letters (repeatable).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        topic = topic_named(options["topic"])
        try:
            if options["action"] == "list":
                count = 0
                for letter in read_dead_letters(topic, include_replayed=options["all"]):
                    count += 1
                    self.stdout.write(f"{letter.partition}:{letter.offset}  from {letter.origin}  {letter.error}")
                self.stdout.write(f"{count} dead letter(s) in {topic.dead_letter}")
                return
            ranges = None if options["all"] else [parse_offset(o) for o in options["offset"]]
            replayed = replay_dead_letters(topic, ranges=ranges)
        except CommandError:
            raise
        except NothingToReplay as exc:
            raise CommandError(str(exc)) from None
        except Exception as exc:
            raise CommandError(f"{type(exc).__name__}: {exc}") from exc
        if not replayed:
            raise CommandError(f"no dead letters waiting in {topic.dead_letter}; nothing replayed")
        self.stdout.write(self.style.SUCCESS(f"replayed {replayed} dead letter(s) to {topic.name}"))
