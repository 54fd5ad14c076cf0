"""Conversations and messages in the admin: for staff to look into, and a group's members to manage.

Messages are written only through `messaging.services` and
`messaging.changes` (seq allocation, watermarks, the outbox), so the admin
adds, changes and deletes no row itself. A group's members and their roles
are shown on its page; staff with the permission to change participants
add, remove, promote and rename on its "members" page, which calls the same
services as the API (`as_staff`), so every change is an event the members
receive. Every page is built with a fixed number of queries, whatever the
number of rows.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied
from django.db.models import Count, IntegerField, OuterRef, QuerySet, Subquery
from django.db.models.functions import Coalesce
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html
from django.utils.text import Truncator

from core.errors import DomainError

from . import changes
from .limits import MAX_TITLE_CHARS
from .models import Conversation, Message, Participant

User = get_user_model()

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
    fields = readonly_fields = ("user", "role", "joined_seq", "left_seq", "joined_at", "delivered_seq", "last_read_seq")
    # Relations stay raw ids should any become editable: never a <select> of every user.
    raw_id_fields = ["user"]
    ordering = ["left_seq", "joined_seq", "joined_at"]
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
        "manage_members",
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

    @admin.display(description="Members")
    def manage_members(self, obj: Conversation) -> str:
        if obj.kind != Conversation.Kind.GROUP:
            return "A direct conversation's members never change."
        url = reverse("admin:messaging_conversation_members", args=[obj.pk])
        return format_html('<a href="{}">Add, remove, promote or rename</a>', url)

    ### A group's members, changed through the services ###

    def has_members_permission(self, request: HttpRequest) -> bool:
        """Return whether the user may change groups' members (the permission to change participants)."""
        return bool(request.user.is_active and request.user.has_perm("messaging.change_participant"))

    def get_urls(self) -> list[URLPattern]:
        members = path(
            "<path:object_id>/members/",
            self.admin_site.admin_view(self.members_view),
            name="messaging_conversation_members",
        )
        # Before the inherited "<object_id>/" patterns, which would match it too.
        return [members, *super().get_urls()]

    def members_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """Show a group's members with their roles, and change them through the same services as the API."""
        if not self.has_members_permission(request):
            raise PermissionDenied
        conversation = Conversation.objects.filter(pk=object_id, kind=Conversation.Kind.GROUP).first()
        if conversation is None:
            raise Http404("No such group.")
        form = MembersForm(request.POST if request.method == "POST" else None)
        if form.is_valid():
            try:
                done = _change_members(request, conversation, form.cleaned_data)
            except DomainError as exc:
                form.add_error(None, _error_text(exc))
            else:
                messages.success(request, done)
                return HttpResponseRedirect(request.path)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": f"Members of {conversation}",
            "conversation": conversation,
            "members": Participant.objects.filter(conversation=conversation)
            .select_related("user")
            .order_by("left_seq", "joined_seq", "user_id"),
            "form": form,
        }
        return TemplateResponse(request, "admin/messaging/conversation/members.html", context)


class MembersForm(forms.Form):
    ACTIONS = [
        ("add", "Add these users"),
        ("remove", "Remove this user"),
        ("admin", "Make this user an admin"),
        ("member", "Make this user a member (not admin)"),
        ("rename", "Rename the group"),
    ]
    action = forms.ChoiceField(choices=ACTIONS)
    usernames = forms.CharField(
        required=False, max_length=2000, help_text="Usernames, separated by commas (one to remove or change a role)."
    )
    title = forms.CharField(required=False, max_length=MAX_TITLE_CHARS, help_text="The new title, to rename.")

    def clean(self) -> dict[str, Any]:
        """Resolve the usernames to users; every action but renaming names at least one."""
        data = super().clean() or {}
        names = [n.strip() for n in data.get("usernames", "").split(",") if n.strip()]
        users = {u.get_username().lower(): u for u in User.objects.filter(username__in=names)}
        missing = [n for n in names if n.lower() not in users]
        if missing:
            self.add_error("usernames", f"No user named {', '.join(missing)}.")
        elif data.get("action") != "rename" and not names:
            self.add_error("usernames", "Name a user.")
        elif data.get("action") in ("remove", "admin", "member") and len(names) > 1:
            self.add_error("usernames", "Name one user.")
        data["users"] = [users[n.lower()] for n in names if n.lower() in users]
        return data


def _change_members(request: HttpRequest, conversation: Conversation, data: dict[str, Any]) -> str:
    """Make the form's change as staff; return what was done."""
    staff, action, users = request.user, data["action"], data["users"]
    assert isinstance(staff, User)
    if action == "add":
        changes.conversation_add_members(
            actor=staff, conversation_id=conversation.pk, user_ids=[u.pk for u in users], as_staff=True
        )
        return f"Added {', '.join(u.get_username() for u in users)} (those already in were left as they were)."
    if action == "rename":
        changes.conversation_rename(actor=staff, conversation_id=conversation.pk, title=data["title"], as_staff=True)
        return "Renamed."
    (user,) = users
    if action == "remove":
        changes.conversation_remove_member(actor=staff, conversation_id=conversation.pk, user_id=user.pk, as_staff=True)
        return f"Removed {user.get_username()}."
    changes.conversation_set_role(
        actor=staff, conversation_id=conversation.pk, user_id=user.pk, role=action, as_staff=True
    )
    return f"{user.get_username()} is now {'an admin' if action == 'admin' else 'a member'}."


def _error_text(exc: DomainError) -> str:
    if isinstance(exc.detail, dict):
        return " ".join(str(v) for v in exc.detail.values())
    return str(exc.detail)


@admin.register(Message)
class MessageAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["conversation", "sender", "seq", "kind", "short_content", "created_at"]
    list_display_links = ["short_content"]
    list_select_related = ["conversation", "sender"]
    list_filter = ["kind", ("created_at", admin.DateFieldListFilter)]
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
        "kind",
        "content",
        "refers_to",
        "meta",
        "client_message_id",
        "created_at",
        "edited_at",
        "deleted_at",
    )
    raw_id_fields = ["conversation", "sender", "refers_to"]

    @admin.display(description="Content")
    def short_content(self, obj: Message) -> str:
        return Truncator(obj.content).chars(SHORT_CONTENT_CHARS)
