"""API tokens that expire.

A user has one token (DRF's model), shared by the user's clients. It is
valid for CHAT_TOKEN_TTL_SECONDS after it was issued; then REST answers 401
`token_expired` and the WebSocket handshake is refused. A client renews by
asking /api/auth/token/ again with the credentials: while the token is
valid that returns the same token (with its `expiresAt`), once expired a new
one.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone
from rest_framework.authentication import TokenAuthentication
from rest_framework.authtoken.models import Token
from rest_framework.exceptions import AuthenticationFailed


class TokenExpired(AuthenticationFailed):
    default_detail = "The token has expired; ask /api/auth/token/ for a new one."
    default_code = "token_expired"


def token_ttl() -> timedelta:
    return timedelta(seconds=settings.CHAT_TOKEN_TTL_SECONDS)


def token_expires_at(token: Token) -> datetime:
    """Return when the token stops being accepted."""
    return token.created + token_ttl()


def token_valid_since() -> datetime:
    """Return the issue time before which a token has expired."""
    return timezone.now() - token_ttl()


def token_is_expired(token: Token) -> bool:
    return token.created < token_valid_since()


def token_issue(*, user: Any) -> Token:
    """Return the user's valid token: the current one, or a new one when there is none or it expired."""
    token, _created = Token.objects.get_or_create(user=user)
    if not token_is_expired(token):
        return token
    Token.objects.filter(key=token.key).delete()
    try:
        with transaction.atomic():
            return Token.objects.create(user=user)
    except IntegrityError:  # a login of the same user at the same moment renewed it first
        return Token.objects.get(user=user)


class ExpiringTokenAuthentication(TokenAuthentication):
    """DRF's token authentication, refusing a token older than CHAT_TOKEN_TTL_SECONDS with `token_expired`."""

    def authenticate_credentials(self, key: str) -> tuple[Any, Token]:
        user, token = super().authenticate_credentials(key)
        if token_is_expired(token):
            raise TokenExpired()
        return user, token
