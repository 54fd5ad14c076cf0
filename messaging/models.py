"""Conversations, their participants, messages and per-recipient receipts.

A message's `seq` is allocated under the conversation's row lock, so it is
gapless and unique per conversation, and commit order equals seq order.
Receipts are per recipient: `delivered_at` is set when the recipient's client
confirms it holds the message, `read_at` when the recipient's read watermark
passes it. `Message.status` is the sender's aggregate view of its receipts.
"""

from __future__ import annotations

import uuid
from typing import Any

from django.conf import settings
from django.db import models
from django.db.models import Q


class Conversation(models.Model):
    class Kind(models.TextChoices):
        DIRECT = "direct"
        GROUP = "group"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    kind = models.CharField(max_length=10, choices=Kind.choices)
    title = models.CharField(max_length=200, blank=True)
    # "<lower user id>:<higher user id>" for direct conversations: one per pair.
    direct_key = models.CharField(max_length=64, unique=True, null=True, blank=True, editable=False)
    last_seq = models.PositiveBigIntegerField(default=0)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    participants: models.ManyToManyField[Any, Any] = models.ManyToManyField(
        settings.AUTH_USER_MODEL, through="Participant", related_name="conversations"
    )

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.title or f"{self.get_kind_display()} {self.id}"


class Participant(models.Model):
    conversation = models.ForeignKey(Conversation, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    joined_at = models.DateTimeField(auto_now_add=True)
    # Everything up to this seq that others sent is READ for this user.
    last_read_seq = models.PositiveBigIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["conversation", "user"], name="participant_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.user_id} in {self.conversation_id}"


class MessageStatus(models.TextChoices):
    SENT = "SENT"
    DELIVERED = "DELIVERED"
    READ = "READ"


class Message(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    conversation = models.ForeignKey(Conversation, on_delete=models.CASCADE, related_name="messages")
    sender = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="sent_messages")
    seq = models.PositiveBigIntegerField()
    content = models.TextField()
    client_message_id = models.CharField(max_length=100)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    status = models.CharField(max_length=10, choices=MessageStatus.choices, default=MessageStatus.SENT)

    class Meta:
        ordering = ["conversation", "seq"]
        constraints = [
            models.UniqueConstraint(fields=["conversation", "seq"], name="message_seq_unique"),
            # A resend with the same clientMessageId finds the original.
            models.UniqueConstraint(fields=["sender", "client_message_id"], name="message_client_id_unique"),
        ]

    def __str__(self) -> str:
        return f"#{self.seq} in {self.conversation_id}"


class Receipt(models.Model):
    message = models.ForeignKey(Message, on_delete=models.CASCADE, related_name="receipts")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="receipts")
    # Denormalized from the message so that sync and unread counts need no join to filter.
    conversation = models.ForeignKey(Conversation, on_delete=models.CASCADE, related_name="+")
    seq = models.PositiveBigIntegerField()
    delivered_at = models.DateTimeField(null=True, blank=True)
    read_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["message", "user"], name="receipt_unique"),
        ]
        indexes = [
            # sync: what this user has not confirmed yet, in conversation and seq order.
            models.Index(
                fields=["user", "conversation", "seq"],
                condition=Q(delivered_at__isnull=True),
                name="receipt_undelivered",
            ),
            # unread counts and read watermarks.
            models.Index(
                fields=["user", "conversation", "seq"],
                condition=Q(read_at__isnull=True),
                name="receipt_unread",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.message_id} -> {self.user_id}"
