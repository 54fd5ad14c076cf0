"""The transactional outbox: Kafka records written in the same transaction as
the change they announce, and relayed to the broker after the commit.

A rolled-back transaction leaves no record, so nothing is published; a
committed one always leaves its record, so it is published even when the
broker or the process fails right after the commit (see produce/relay.py).
"""

from django.db import models


class OutboxRecord(models.Model):
    id = models.BigAutoField(primary_key=True)
    topic = models.CharField(max_length=249)
    key = models.CharField(max_length=255)
    value = models.BinaryField()
    headers = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.topic}[{self.key}] #{self.id}"


def outbox_depth() -> int:
    """Return how many outbox records wait for the broker's acknowledgement."""
    return OutboxRecord.objects.count()
