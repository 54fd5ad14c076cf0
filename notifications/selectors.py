"""Reads of notifications, each scoped to one user."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import QuerySet

from .models import Notification


def notifications_for_user(user: AbstractBaseUser, *, unread_only: bool = False) -> QuerySet[Notification]:
    """Return the user's notifications, newest first (only the unread ones if asked)."""
    notifications = Notification.objects.filter(user_id=user.pk).order_by("-created_at", "-id")
    if unread_only:
        notifications = notifications.filter(read=False)
    return notifications
