from django.core.management.base import BaseCommand, CommandError, CommandParser

from kafka_bridge.operate.provisioning import ensure_topics


class Command(BaseCommand):
    help = (
        "Create missing Kafka topics (and their dead-letter topics), replicated as the cluster's size or the "
        "settings say, and report drift in existing ones."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--strict", action="store_true", help="Exit non-zero when an existing topic drifted.")

    def handle(self, *args: object, **options: object) -> None:
        try:
            result = ensure_topics()
        except Exception as exc:
            raise CommandError(f"Could not manage topics: {exc}") from exc
        replication = result.replication
        self.stdout.write(
            f"{result.brokers} broker(s): replication factor {replication.factor}, "
            f"min.insync.replicas {replication.min_insync}"
        )
        for name in result.created:
            self.stdout.write(self.style.SUCCESS(f"created {name}"))
        for problem in result.drift:
            self.stdout.write(self.style.WARNING(f"drift: {problem}"))
        if not result.created and not result.drift:
            self.stdout.write("all topics present and as configured")
        if result.drift and options["strict"]:
            raise CommandError(f"{len(result.drift)} topic setting(s) drifted")
