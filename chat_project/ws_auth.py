"""WebSocket handshake checks: who the user is, and where the page came from.

A token (the `Authorization: Token <key>` header, or `?token=<key>` for
browser code that cannot set headers) wins over the session cookie. The
Origin header, when present, must name an allowed host; non-browser clients
send none and are identified by their token alone.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs

from channels.auth import AuthMiddlewareStack
from channels.security.websocket import OriginValidator
from django.conf import settings
from django.contrib.auth.models import AnonymousUser
from rest_framework.authtoken.models import Token

from chat_project.db import db


@db
def user_for_token(key: str) -> Any:
    """Return the active user owning a token, or AnonymousUser."""
    token = Token.objects.select_related("user").filter(key=key).first()
    if token is None or not token.user.is_active:
        return AnonymousUser()
    return token.user


def token_from_scope(scope: dict[str, Any]) -> str | None:
    """Return the token a handshake carries, from its header or its query string."""
    for name, value in scope.get("headers", []):
        if name == b"authorization":
            scheme, _, key = value.decode("latin-1").partition(" ")
            if scheme.lower() == "token" and key.strip():
                return key.strip()
    values = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("token")
    return values[0] if values else None


class TokenAuthMiddleware:
    """Set scope["user"] from a token when the handshake carries one."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Any:
        key = token_from_scope(scope)
        if key is not None:
            scope = {**scope, "user": await user_for_token(key)}
        return await self.inner(scope, receive, send)


class BrowserOriginValidator(OriginValidator):
    """Check Origin against ALLOWED_HOSTS; a handshake without Origin is not a browser's."""

    def valid_origin(self, parsed_origin: Any) -> bool:
        if parsed_origin is None:
            return True
        return super().valid_origin(parsed_origin)


def websocket_stack(inner: Any) -> Any:
    """Wrap the WebSocket router with origin checks and authentication."""
    return BrowserOriginValidator(AuthMiddlewareStack(TokenAuthMiddleware(inner)), settings.ALLOWED_HOSTS)
