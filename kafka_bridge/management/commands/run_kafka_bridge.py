import asyncio
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from kafka_bridge.consume.bridge import run_bridge
from kafka_bridge.consume.registry import loops


class Command(BaseCommand):
    help = "Run the Kafka consumer loops that push events to users' sockets, and the outbox relay."

    def add_arguments(self, parser: CommandParser) -> None:
        names = list(loops())
        parser.add_argument(
            "--loops",
            nargs="+",
            choices=sorted(names),
            default=names,
            help="Run only these consumer loops (default: all).",
        )
        parser.add_argument("--group", default=None, help="Consumer group (default: KAFKA_CONSUMER_GROUP).")
        parser.add_argument("--no-relay", action="store_true", help="Do not relay the outbox from this process.")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            asyncio.run(run_bridge(options["loops"], group_id=options["group"], relay=not options["no_relay"]))
        except OSError as exc:  # its HTTP endpoint's address is taken
            raise CommandError(str(exc)) from exc
