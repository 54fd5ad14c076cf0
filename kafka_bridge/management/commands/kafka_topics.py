from django.core.management.base import BaseCommand, CommandError, CommandParser

from kafka_bridge.operate.provisioning import ensure_topics


class Command(BaseCommand):
    help = "Create missing Kafka topics (and their dead-letter topics) and report drift in existing ones."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--strict", action="store_true", help="Exit non-zero when an existing topic drifted.")

    def handle(self, *args: object, **options: object) -> None:
        try:
            created, drift = ensure_topics()
        except Exception as exc:
            raise CommandError(f"Could not manage topics: {exc}") from exc
        for name in created:
            self.stdout.write(self.style.SUCCESS(f"created {name}"))
        for problem in drift:
            self.stdout.write(self.style.WARNING(f"drift: {problem}"))
        if not created and not drift:
            self.stdout.write("all topics present and as configured")
        if drift and options["strict"]:
            raise CommandError(f"{len(drift)} topic setting(s) drifted")
