"""Writing to the outbox: the only way domain code publishes durable events."""

from __future__ import annotations

from django.db import transaction

from .models import OutboxRecord
from .payloads import Payload
from .topics import Topic


def outbox_enqueue(*, topic: Topic, payload: Payload, headers: dict[str, str] | None = None) -> OutboxRecord:
    """Queue a record for Kafka; must run inside the transaction of the change it announces."""
    assert transaction.get_connection().in_atomic_block, "outbox_enqueue needs the caller's transaction"
    record = OutboxRecord.objects.create(
        topic=topic.name,
        key=topic.key(payload),
        value=payload.encode(),
        headers=headers or {},
    )
    # Imported here: the relay module pulls in the Kafka client, which models need not.
    from .relay import wake_relay

    transaction.on_commit(wake_relay)
    return record
