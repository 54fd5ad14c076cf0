"""Writes of the users directory: accounts and profiles."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from django.contrib.auth import get_user_model, password_validation
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import IntegrityError, transaction

from core.errors import ValidationFailed

from .checks import check_display_name
from .models import Profile
from .usernames import check_username, username_taken

User = get_user_model()


def profile_set_display_name(*, user: AbstractBaseUser, display_name: str) -> Profile:
    """Set the name others see for the user (empty: they see the username)."""
    profile, _ = Profile.objects.update_or_create(
        user_id=user.pk, defaults={"display_name": check_display_name(display_name)}
    )
    return profile


def users_last_seen_set(*, user_ids: Iterable[int | str], at: datetime) -> None:
    """Record that the users' last sockets closed at `at`, in one statement for all of them.

    A user without a profile gets one; ids of users that no longer exist are left out.
    """
    ids = {int(u) for u in user_ids}
    existing = User.objects.filter(pk__in=ids).values_list("pk", flat=True)
    Profile.objects.bulk_create(
        [Profile(user_id=pk, last_seen_at=at) for pk in existing],
        update_conflicts=True,
        unique_fields=["user"],
        update_fields=["last_seen_at"],
    )


def user_register(*, username: str, password: str) -> AbstractBaseUser:
    """Create an account; raise ValidationFailed on a taken name (in any case) or a weak password."""
    username = check_username(username)
    try:
        password_validation.validate_password(password, User(username=username))
    except DjangoValidationError as exc:
        raise ValidationFailed({"detail": exc.messages}) from None
    if username_taken(username):
        raise ValidationFailed({"username": "This username is taken."})
    try:
        with transaction.atomic():
            return User.objects.create_user(username=username, password=password)
    except IntegrityError:
        raise ValidationFailed({"username": "This username is taken."}) from None
