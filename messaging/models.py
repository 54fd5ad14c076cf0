"""Conversations, their participants and messages, with delivery and read state as watermarks.

A message's `seq` is allocated under the conversation's row lock, so it is
gapless and unique per conversation, and commit order equals seq order.
Because seq has no gaps, what a participant's client holds and what the
participant has read are each one number per conversation that only moves
forward (`delivered_seq`, `last_read_seq`), as Matrix's read markers and
Mattermost's "last viewed" are: nothing is stored per message and reader. A
message's status (the sender's view) is worked out from the other
participants' watermarks (`watermarks.py`).
"""

from __future__ import annotations

import uuid
from typing import Any

from django.conf import settings
from django.db import models


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
    # The seq of the last membership event (0: the members it was created with). A process that cached
    # the members at another value reads them again (services.conversation_member_ids).
    members_seq = models.PositiveBigIntegerField(default=0)
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
    """A user's membership of a conversation, kept after the user leaves.

    Membership is a range of seqs: from `joined_seq` to `left_seq` (the seq
    of the member_removed or member_left event, which the user still
    receives), open while `left_seq` is null. It decides which messages the
    user receives and may read. Departed members no longer count for
    message statuses.
    """

    class Role(models.TextChoices):
        ADMIN = "admin"
        MEMBER = "member"

    conversation = models.ForeignKey(Conversation, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    joined_at = models.DateTimeField(auto_now_add=True)
    # The user's client holds every message with a seq up to this one (its own included).
    delivered_seq = models.PositiveBigIntegerField(default=0)
    # Everything up to this seq that others sent is READ for this user; never above delivered_seq.
    last_read_seq = models.PositiveBigIntegerField(default=0)
    # Groups only: admins change the membership, the title and roles, and delete others' messages.
    role = models.CharField(max_length=10, choices=Role.choices, default=Role.MEMBER)
    # The first seq the user receives and may read.
    joined_seq = models.PositiveBigIntegerField(default=1)
    # The last seq the user received (the event of leaving); null while a member.
    left_seq = models.PositiveBigIntegerField(null=True, blank=True)

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


class MessageKind(models.TextChoices):
    TEXT = "text"
    EDIT = "edit"
    DELETE = "delete"
    MEMBER_ADDED = "member_added"
    MEMBER_REMOVED = "member_removed"
    MEMBER_LEFT = "member_left"
    RENAMED = "renamed"
    ROLE_CHANGED = "role_changed"


class Message(models.Model):
    """A message or an event of the conversation's sequence (PROTOCOL.md §7): its `kind` says which.

    Events other than `text` carry `meta` and, for edits and deletes,
    `refers_to`; `content` is always a line a client that does not know the
    kind can show.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    conversation = models.ForeignKey(Conversation, on_delete=models.CASCADE, related_name="messages")
    sender = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="sent_messages")
    seq = models.PositiveBigIntegerField()
    content = models.TextField()
    client_message_id = models.CharField(max_length=100)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    kind = models.CharField(max_length=20, choices=MessageKind.choices, default=MessageKind.TEXT)
    refers_to = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    meta = models.JSONField(null=True, blank=True)
    # Set on a text message by its latest edit, and by its delete (then content is "").
    edited_at = models.DateTimeField(null=True, blank=True)
    deleted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["conversation", "seq"]
        constraints = [
            models.UniqueConstraint(fields=["conversation", "seq"], name="message_seq_unique"),
            # A resend with the same clientMessageId finds the original.
            models.UniqueConstraint(fields=["sender", "client_message_id"], name="message_client_id_unique"),
        ]

    def __str__(self) -> str:
        return f"#{self.seq} in {self.conversation_id}"
