from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from core.errors import ValidationFailed
from core.parsing import iso_utc
from kafka_bridge.produce.republish import RepublishFailed
from messaging.events import CHAT_MESSAGES
from messaging.republish import check_selection, messages_republish

# The options that name a part of the selection (check_selection's error keys).
OPTIONS = ("conversation", "since", "until")


class Command(BaseCommand):
    help = (
        "Produce stored messages and events again to chat-messages, with the ids and fields they first had, "
        "for consumers downstream that lost records. This service's own bridge skips them."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--conversation", metavar="ID", help="Only this conversation's messages.")
        parser.add_argument(
            "--since", metavar="TIME", help="Only messages created at or after this ISO 8601 time (UTC without a zone)."
        )
        parser.add_argument("--until", metavar="TIME", help="Only messages created before this ISO 8601 time.")
        parser.add_argument("--dry-run", action="store_true", help="Count what would go; produce nothing.")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            selection = check_selection(
                conversation_id=options["conversation"], since=options["since"], until=options["until"]
            )
        except ValidationFailed as exc:
            detail = exc.detail if isinstance(exc.detail, dict) else {"": exc.detail}
            problems = [f"--{k}: {v}" if k in OPTIONS else str(v) for k, v in detail.items()]
            raise CommandError("; ".join(problems)) from None
        try:
            summary = messages_republish(selection=selection, dry_run=options["dry_run"])
        except RepublishFailed as exc:
            raise CommandError(f"Republishing failed: {exc}") from None
        span = (
            f", created {iso_utc(summary.first_created)} to {iso_utc(summary.last_created)}"
            if summary.first_created and summary.last_created
            else ""
        )
        verb = "Would republish" if options["dry_run"] else "Republished"
        line = (
            f"{verb} {summary.records} record(s) of {len(summary.conversations)} conversation(s) "
            f"to {CHAT_MESSAGES.name}{span} ({selection.describe()})"
        )
        if options["dry_run"]:
            line += "; dry run, nothing produced"
        self.stdout.write(self.style.SUCCESS(line))
