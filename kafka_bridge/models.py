"""The transactional outbox: Kafka records written in the same transaction as
the change they announce, and relayed to the broker after the commit.

A rolled-back transaction leaves no record, so nothing is published; a
committed one always leaves its record, so it is published even when the
broker or the process fails right after the commit (see produce/relay.py).

Each record names the relay that publishes it; while that relay's lease is
renewed, no other relay sends the record (see produce/lease.py).
"""

from django.db import models


class OutboxRecord(models.Model):
    id = models.BigAutoField(primary_key=True)
    topic = models.CharField(max_length=249)
    key = models.CharField(max_length=255)
    value = models.BinaryField()
    headers = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    # The relay that publishes it (a RelayLease id); null: committed where no relay runs.
    relay = models.UUIDField(null=True, blank=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.topic}[{self.key}] #{self.id}"


class RelayLease(models.Model):
    """A running outbox relay, and until when it answers for the records it owns."""

    id = models.UUIDField(primary_key=True)
    alive_until = models.DateTimeField()

    def __str__(self) -> str:
        return f"relay {self.id} until {self.alive_until:%H:%M:%S}"


def outbox_depth() -> int:
    """Return how many outbox records wait for the broker's acknowledgement."""
    return OutboxRecord.objects.count()
