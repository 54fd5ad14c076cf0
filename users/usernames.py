"""What a username may be, and when two names are the same name.

A name is normalised with NFKC first (full-width "\uff41\uff4e\uff4e" becomes
"ann", as Django itself does), then registration accepts ASCII letters,
digits and `. _ @ + -` only. Names in other scripts are refused rather than
compared: "\u0430nn" with a Cyrillic "\u0430" looks exactly like "ann", and no
case rule would catch it. Two names that differ only in case
are the same name: the database refuses the second (a unique index on
LOWER(username)), and login finds the account whatever the case typed.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any

from django.contrib.auth import get_user_model
from django.db.models import Value
from django.db.models.functions import Lower

from core.errors import ValidationFailed

USERNAME_MAX_LENGTH = 150
USERNAME_PATTERN = re.compile(r"[A-Za-z0-9._@+-]+")
USERNAME_RULE = f"1 to {USERNAME_MAX_LENGTH} ASCII letters, digits and . _ @ + -"


def username_normalize(raw: str) -> str:
    """Return the name as stored and compared: NFKC, without surrounding whitespace."""
    return unicodedata.normalize("NFKC", raw).strip()


def username_key(raw: str) -> str:
    """Return what identifies a name regardless of case (for limits and comparisons)."""
    return username_normalize(raw).lower()


def check_username(raw: str) -> str:
    """Return the normalised name a new account may take; raise ValidationFailed otherwise."""
    name = username_normalize(raw)
    if len(name) > USERNAME_MAX_LENGTH or not USERNAME_PATTERN.fullmatch(name):
        raise ValidationFailed({"username": f"A username is {USERNAME_RULE}."})
    return name


def user_by_username(raw: str) -> Any:
    """Return the user with this name in any case, or None (one query, on the LOWER(username) index)."""
    users = get_user_model()._default_manager.alias(name=Lower("username"))
    return users.filter(name=Lower(Value(username_normalize(raw)))).first()


def username_taken(raw: str) -> bool:
    """Return whether a user has this name in any case."""
    users = get_user_model()._default_manager.alias(name=Lower("username"))
    return users.filter(name=Lower(Value(username_normalize(raw)))).exists()
