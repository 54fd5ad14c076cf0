from confluent_kafka import KafkaException
from django.core.management.base import BaseCommand, CommandError, CommandParser

from kafka_bridge.operate.acls import grant_service_acls


class Command(BaseCommand):
    help = (
        "Grant a Kafka user the ACLs the service needs (its topics and consumer groups, nothing else). "
        "Run it with the credentials of a super user in KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--user", required=True, help="The service's Kafka user (SASL username), e.g. chat.")
        parser.add_argument(
            "--group", default=None, help="Prefix of the service's consumer groups (default: KAFKA_CONSUMER_GROUP)."
        )

    def handle(self, *args: object, **options: object) -> None:
        user = str(options["user"])
        try:
            granted = grant_service_acls(user, group_base=options["group"])  # type: ignore[arg-type]
        except KafkaException as exc:
            raise CommandError(f"Could not grant the ACLs of User:{user}: {exc.args[0]}") from exc
        for resource in granted:
            self.stdout.write(f"User:{user} may use {resource}")
