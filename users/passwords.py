"""A password validator added to Django's own (AUTH_PASSWORD_VALIDATORS)."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError


class NotOnlyWhitespaceValidator:
    """Refuse a password made of whitespace only (ten spaces pass every length check)."""

    def validate(self, password: str, user: Any = None) -> None:
        if not password.strip():
            raise ValidationError("The password cannot be only whitespace.", code="password_only_whitespace")

    def get_help_text(self) -> str:
        return "Your password cannot be only whitespace."
