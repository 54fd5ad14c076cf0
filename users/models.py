"""What the service keeps about a user beyond Django's account: the name others see, and when they were last seen."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from .limits import MAX_DISPLAY_NAME_CHARS


class Profile(models.Model):
    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, primary_key=True, on_delete=models.CASCADE, related_name="profile"
    )
    # Empty: the client shows the username.
    display_name = models.CharField(max_length=MAX_DISPLAY_NAME_CHARS, blank=True)
    # When the user's last open socket closed (null: never seen); whether one is open now is in Redis (presence.py).
    last_seen_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return self.display_name or str(self.user_id)
