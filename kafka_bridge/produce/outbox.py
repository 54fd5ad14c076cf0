"""Writing to the outbox: the only way domain code publishes durable events."""

from __future__ import annotations

from collections.abc import Sequence

from django.db import transaction

from ..models import OutboxRecord
from ..payloads import Payload
from ..topics import Topic


def outbox_enqueue(*, topic: Topic, payload: Payload, headers: dict[str, str] | None = None) -> None:
    """Queue a record for Kafka; must run inside the transaction of the change it announces."""
    outbox_enqueue_many(topic=topic, payloads=[payload], headers=headers)


def outbox_enqueue_many(*, topic: Topic, payloads: Sequence[Payload], headers: dict[str, str] | None = None) -> None:
    """Queue records for Kafka in one insert, in order; must run inside the caller's transaction."""
    outbox_enqueue_each(topic=topic, records=[(p, headers) for p in payloads])


def outbox_enqueue_each(*, topic: Topic, records: list[tuple[Payload, dict[str, str] | None]]) -> None:
    """Queue records with headers of their own in one insert, in order; must run inside the caller's transaction."""
    assert transaction.get_connection().in_atomic_block, "the outbox needs the caller's transaction"
    # Imported here: the relay module pulls in the Kafka client, which models need not.
    from .relay import publish_on_commit, relay_owner

    owner = relay_owner()
    rows = OutboxRecord.objects.bulk_create(
        OutboxRecord(topic=topic.name, key=topic.key(p), value=p.encode(), headers=h or {}, relay=owner)
        for p, h in records
    )
    publish_on_commit(rows)
