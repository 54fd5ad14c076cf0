"""The notification history in the admin, and the page that sends system notifications.

Notifications are history: staff with the view permission browse them, nobody
adds or deletes them here, and the only change allowed is marking one read,
which goes through `notification_mark_read` so that the user's sockets hear
of it. Sending a SYSTEM notification is for superusers only; the page calls
the same services as the `send_notification` command.
"""

from __future__ import annotations

import uuid
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html

from core.errors import ValidationFailed

from .limits import MAX_CONTENT_CHARS, MAX_TITLE_CHARS
from .models import Notification
from .services import notification_broadcast_system, notification_mark_read, notification_send_system

User = get_user_model()


class SystemNotificationForm(forms.Form):
    user = forms.CharField(
        required=False,
        max_length=150,
        help_text="Username of the one user to notify; leave blank to notify every active user.",
    )
    title = forms.CharField(max_length=MAX_TITLE_CHARS)
    content = forms.CharField(required=False, max_length=MAX_CONTENT_CHARS, widget=forms.Textarea)

    def clean_user(self) -> AbstractBaseUser | None:
        """Resolve the username to a user; blank means everyone."""
        username = self.cleaned_data["user"]
        if not username:
            return None
        user = User.objects.filter(username=username).first()
        if user is None:
            raise forms.ValidationError(f"There is no user named {username!r}.")
        return user


# Shown on the change page; get_readonly_fields makes them read-only.
NOTIFICATION_FIELDS = (
    "id",
    "user",
    "type",
    "title",
    "content",
    "message_link",
    "conversation",
    "first_seq",
    "last_seq",
    "message_count",
    "sender_name",
    "read",
    "created_at",
    "updated_at",
)


@admin.register(Notification)
class NotificationAdmin(admin.ModelAdmin):
    list_display = ["title", "user", "type", "read", "created_at", "message_link"]
    list_filter = ["type", "read", ("created_at", admin.DateFieldListFilter)]
    date_hierarchy = "created_at"
    search_fields = ["user__username", "title"]
    search_help_text = "Search by username or title."
    list_select_related = ["user"]
    ordering = ["-created_at"]
    list_per_page = 50
    # The unfiltered total is a second COUNT(*) over the whole history on every page view.
    show_full_result_count = False
    fields = NOTIFICATION_FIELDS
    # Never a <select> of every user or conversation, should these become editable.
    raw_id_fields = ["user", "conversation"]

    @admin.display(description="Message")
    def message_link(self, obj: Notification) -> str | None:
        """Link a NEW_MESSAGE notification to its message's admin page."""
        if obj.type != Notification.Type.NEW_MESSAGE or not obj.related_entity_id:
            return None
        # Built from the id alone, so a page of notifications costs no message queries;
        # a message deleted since then opens on the admin's "does not exist" notice.
        try:
            message_id = uuid.UUID(obj.related_entity_id)
        except ValueError:
            return obj.related_entity_id  # another producer's id: show it, link nothing
        return format_html(
            '<a href="{}">View message</a>', reverse("admin:messaging_message_change", args=[message_id])
        )

    ### Permissions: history is never added or deleted here ###

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Notification | None = None) -> bool:
        return False

    def get_readonly_fields(self, request: HttpRequest, obj: Notification | None = None) -> list[str]:
        """Make every field read-only except `read`, and that one too once it is set."""
        # There is no service that marks a notification unread again.
        return [name for name in NOTIFICATION_FIELDS if name != "read" or (obj is not None and obj.read)]

    def save_model(self, request: HttpRequest, obj: Notification, form: forms.ModelForm, change: bool) -> None:
        """Mark the notification read through the service, which tells the user's sockets."""
        if "read" in form.changed_data and obj.read:
            notification_mark_read(user=obj.user, notification_id=obj.pk)

    ### Sending system notifications ###

    def has_send_permission(self, request: HttpRequest) -> bool:
        """Return whether the user may send system notifications (superusers only)."""
        return request.user.is_active and request.user.is_superuser

    def get_urls(self) -> list[URLPattern]:
        send = path(
            "send/",
            self.admin_site.admin_view(self.send_view),
            name=f"{self.opts.app_label}_{self.opts.model_name}_send",
        )
        # Before the inherited "<object_id>/" patterns, which would match "send/" too.
        return [send, *super().get_urls()]

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        extra_context = {**(extra_context or {}), "can_send_system_notification": self.has_send_permission(request)}
        return super().changelist_view(request, extra_context)

    def send_view(self, request: HttpRequest) -> HttpResponse:
        """Show the send form, and send a SYSTEM notification to one user or to everyone."""
        if not self.has_send_permission(request):
            raise PermissionDenied
        form = SystemNotificationForm(request.POST if request.method == "POST" else None)
        if form.is_valid():
            data = form.cleaned_data
            try:
                sent = self._send(user=data["user"], title=data["title"], content=data["content"])
            except ValidationFailed as exc:
                _add_domain_errors(form, exc)
            else:
                noun = "notification" if sent == 1 else "notifications"
                messages.success(request, f"Sent {sent} system {noun}.")
                return HttpResponseRedirect(reverse(f"admin:{self.opts.app_label}_{self.opts.model_name}_changelist"))
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": "Send system notification",
            "form": form,
        }
        return TemplateResponse(request, "admin/notifications/notification/send.html", context)

    def _send(self, *, user: AbstractBaseUser | None, title: str, content: str) -> int:
        if user is not None:
            notification_send_system(user=user, title=title, content=content)
            return 1
        return sum(notification_broadcast_system(title=title, content=content))


def _add_domain_errors(form: forms.Form, exc: ValidationFailed) -> None:
    """Show a service's validation errors on the form fields they name."""
    detail = exc.detail if isinstance(exc.detail, dict) else {None: exc.detail}
    for field, message in detail.items():
        form.add_error(field if field in form.fields else None, str(message))
