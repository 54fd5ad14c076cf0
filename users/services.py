"""Writes of the users directory."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser

from .checks import check_display_name
from .models import Profile


def profile_set_display_name(*, user: AbstractBaseUser, display_name: str) -> Profile:
    """Set the name others see for the user (empty: they see the username)."""
    profile, _ = Profile.objects.update_or_create(
        user_id=user.pk, defaults={"display_name": check_display_name(display_name)}
    )
    return profile
