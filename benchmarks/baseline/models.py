"""The one table of the "tutorial + INSERT" baseline."""

from __future__ import annotations

import uuid

from django.db import models


class Message(models.Model):
    """A chat message as the tutorial would store it: one row, no receipts, no outbox."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    conversation_id = models.CharField(max_length=64)
    sender_id = models.CharField(max_length=64)
    content = models.TextField()
    client_message_id = models.CharField(max_length=100)
    created_at = models.DateTimeField()
