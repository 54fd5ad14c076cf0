"""Conversations and messages in the admin: read-only, for staff to look into.

Messages are written only through `messaging.services` (seq allocation,
watermarks, the outbox), so the admin adds, changes and deletes nothing. Every
page is built with a fixed number of queries, whatever the number of rows.
"""

from __future__ import annotations

from django.contrib import admin
from django.db.models import Count, IntegerField, OuterRef, QuerySet, Subquery
from django.db.models.functions import Coalesce
from django.http import HttpRequest
from django.utils.text import Truncator

from .models import Conversation, Message, Participant

SHORT_CONTENT_CHARS = 80


class ReadOnlyAdminMixin:
    """Allow viewing only, to everyone including superusers."""

    def has_add_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


class ParticipantInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = Participant
    fields = readonly_fields = ("user", "joined_at", "delivered_seq", "last_read_seq")
    # Relations stay raw ids should any become editable: never a <select> of every user.
    raw_id_fields = ["user"]
    ordering = ["joined_at"]
    extra = 0

    def get_queryset(self, request: HttpRequest) -> QuerySet[Participant]:
        return super().get_queryset(request).select_related("user")


@admin.register(Conversation)
class ConversationAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["id", "kind", "title", "last_seq", "participant_count", "created_at"]
    list_filter = ["kind", ("created_at", admin.DateFieldListFilter)]
    search_fields = ["title", "id"]
    search_help_text = "Search by title or id."
    ordering = ["-created_at"]
    list_per_page = 50
    # The unfiltered total is a second COUNT(*) over the whole table on every page view.
    show_full_result_count = False
    fields = readonly_fields = (
        "id",
        "kind",
        "title",
        "direct_key",
        "last_seq",
        "participant_count",
        "created_by",
        "created_at",
    )
    raw_id_fields = ["created_by"]
    inlines = [ParticipantInline]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Conversation]:
        """Annotate each conversation with its participant count."""
        # A correlated count runs for the page's rows only, where a join with
        # GROUP BY would aggregate the whole table (the paginator's count too).
        members = (
            Participant.objects.filter(conversation=OuterRef("pk"))
            .order_by()
            .values("conversation")
            .annotate(n=Count("pk"))
            .values("n")
        )
        count = Coalesce(Subquery(members, output_field=IntegerField()), 0)
        return super().get_queryset(request).annotate(participant_count=count)

    @admin.display(description="Participants", ordering="participant_count")
    def participant_count(self, obj: Conversation) -> int:
        return getattr(obj, "participant_count", 0)  # annotated by get_queryset


@admin.register(Message)
class MessageAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["conversation", "sender", "seq", "short_content", "created_at"]
    list_display_links = ["short_content"]
    list_select_related = ["conversation", "sender"]
    list_filter = [("created_at", admin.DateFieldListFilter)]
    search_fields = ["content", "client_message_id"]
    search_help_text = "Search by content or client message id."
    ordering = ["-created_at"]
    list_per_page = 50
    show_full_result_count = False
    fields = readonly_fields = (
        "id",
        "conversation",
        "sender",
        "seq",
        "content",
        "client_message_id",
        "created_at",
    )
    raw_id_fields = ["conversation", "sender"]

    @admin.display(description="Content")
    def short_content(self, obj: Message) -> str:
        return Truncator(obj.content).chars(SHORT_CONTENT_CHARS)
