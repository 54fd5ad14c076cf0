"""In-app notifications: their history is what the admin shows.

The bridge's notifications consumer stores each record by its id, so
consuming one twice stores it once; a later record with the same id (a
coalesced "3 new messages", or a "read" flag) updates it. The id is a
string: this service's own are UUIDs, another producer's are whatever it
chose (the seed's "notif-111").
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models

from .limits import MAX_ID_CHARS, MAX_RELATED_ENTITY_ID_CHARS, MAX_TITLE_CHARS, MAX_TYPE_CHARS


def new_notification_id() -> str:
    """Return the id of a notification this service creates."""
    return str(uuid.uuid4())


class Notification(models.Model):
    class Type(models.TextChoices):
        NEW_MESSAGE = "NEW_MESSAGE"
        SYSTEM = "SYSTEM"

    id = models.CharField(primary_key=True, max_length=MAX_ID_CHARS, default=new_notification_id, editable=False)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="notifications")
    type = models.CharField(max_length=MAX_TYPE_CHARS, choices=Type.choices, db_index=True)
    title = models.CharField(max_length=MAX_TITLE_CHARS)
    content = models.TextField(blank=True)
    related_entity_id = models.CharField(max_length=MAX_RELATED_ENTITY_ID_CHARS, null=True, blank=True)
    read = models.BooleanField(default=False, db_index=True)
    created_at = models.DateTimeField(db_index=True)
    # Versions a record: a record older than what is stored never overwrites it.
    updated_at = models.DateTimeField()
    # NEW_MESSAGE coalescing: the conversation and the seq range this notification covers.
    conversation = models.ForeignKey(
        "messaging.Conversation", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    first_seq = models.PositiveBigIntegerField(null=True, blank=True)
    last_seq = models.PositiveBigIntegerField(null=True, blank=True)
    message_count = models.PositiveIntegerField(default=0)
    # The one sender of the covered messages; blank once several have written.
    sender_name = models.CharField(max_length=150, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["user", "-created_at"], name="notification_user_recent"),
            models.Index(
                fields=["user", "conversation"],
                condition=models.Q(read=False, type="NEW_MESSAGE"),
                name="notification_unread_new_msg",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.type} for {self.user_id}: {self.title}"
