"""Send a SYSTEM notification to one user or to every active user."""

from __future__ import annotations

import sys
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

from core.errors import ValidationFailed
from kafka_bridge.produce.relay import process_relay
from notifications.limits import MAX_CONTENT_CHARS, MAX_TITLE_CHARS
from notifications.services import notification_broadcast_system, notification_send_system

User = get_user_model()


class Command(BaseCommand):
    help = "Send a SYSTEM notification to one user (--user) or to every active user (--all)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--title", required=True, help=f"Title, 1 to {MAX_TITLE_CHARS} characters.")
        parser.add_argument("--content", default="", help=f"Body, at most {MAX_CONTENT_CHARS} characters.")
        to = parser.add_mutually_exclusive_group(required=True)
        to.add_argument("--user", metavar="USERNAME_OR_ID", help="The user to notify: a username, else a user id.")
        to.add_argument("--all", action="store_true", help="Notify every active user.")

    def handle(self, *args: Any, **options: Any) -> None:
        if settings.OUTBOX_RELAY_AUTOSTART:
            # Publish at once rather than leave the records to the servers' sweep.
            process_relay().start()
        try:
            if options["all"]:
                sent = self._broadcast(options["title"], options["content"], options.get("stderr") or sys.stderr)
                self.stdout.write(self.style.SUCCESS(f"Sent {sent} notifications."))
            else:
                user = _find_user(options["user"])
                notification = notification_send_system(user=user, title=options["title"], content=options["content"])
                self.stdout.write(self.style.SUCCESS(f"Sent notification {notification.pk} to {user.get_username()}."))
        except ValidationFailed as exc:
            raise CommandError(f"Invalid notification: {_describe(exc.detail)}") from None
        finally:
            # Wait for the broker to take what is in flight before exit, so no
            # record is produced twice; records it leaves, the servers' relays send.
            process_relay().stop()

    def _broadcast(self, title: str, content: str, progress_file: Any) -> int:
        # Only the bar's length: users who join meanwhile are notified too.
        total = User.objects.filter(is_active=True).count()
        batches = notification_broadcast_system(title=title, content=content)
        # The service checks its input as the first batch starts: bad input fails before a bar is drawn.
        sent = next(batches, 0)
        # Written to the raw stream: Django's wrapper would end every redraw with a newline.
        with tqdm(total=total, initial=sent, unit="user", desc="Sending", file=progress_file) as bar:
            for batch in batches:
                sent += batch
                bar.update(batch)
        return sent


def _find_user(value: str) -> AbstractBaseUser:
    """Return the user with this username, else with this id."""
    user = User.objects.filter(username=value).first()
    # Beyond a bigint the database itself would raise.
    if user is None and value.isascii() and value.isdigit() and len(value) < 19:
        user = User.objects.filter(pk=int(value)).first()
    if user is None:
        raise CommandError(f"No user with username or id {value!r}.")
    return user


def _describe(detail: Any) -> str:
    if isinstance(detail, dict):
        return "; ".join(f"{field}: {message}" for field, message in detail.items())
    return str(detail)
