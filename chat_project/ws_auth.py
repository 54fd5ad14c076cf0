"""WebSocket handshake checks: who the user is, and where the page came from.

A token (the `Authorization: Token <key>` header, or `?token=<key>` for
browser code that cannot set headers) wins over the session cookie. The
Origin header, when present, must name an allowed host; non-browser clients
send none and are identified by their token alone. An expired token
(users/tokens.py) is no token: the handshake is refused.

After a deploy every client reconnects at once, so the tokens of the
handshakes arriving together are looked up with one query, and only
handshakes without a token (the web page's) pay for the session lookup.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from urllib.parse import parse_qs

from channels.auth import AuthMiddlewareStack
from channels.security.websocket import OriginValidator
from django.conf import settings
from django.contrib.auth.models import AnonymousUser
from rest_framework.authtoken.models import Token

from core.batching import Coalescer, PerLoop
from core.db import db
from users.tokens import token_expires_at, token_valid_since

# A CharField always has a max_length; the stubs allow None for every field.
TOKEN_KEY_LENGTH: int = Token._meta.get_field("key").max_length  # type: ignore[assignment]


def users_for_tokens(keys: list[str]) -> dict[str, tuple[Any, datetime]]:
    """Return the active users owning the given tokens that have not expired, with each token's expiry, by token."""
    tokens = Token.objects.select_related("user").filter(
        key__in=set(keys), user__is_active=True, created__gte=token_valid_since()
    )
    return {token.key: (token.user, token_expires_at(token)) for token in tokens}


async def _users_for_tokens(keys: list[str]) -> dict[str, tuple[Any, datetime]]:
    return await db(users_for_tokens)(keys)


_token_lookups: PerLoop[Coalescer[str, dict[str, tuple[Any, datetime]]]] = PerLoop(
    lambda: Coalescer(_users_for_tokens, "token lookups")
)


async def user_for_token(key: str) -> tuple[Any, datetime | None]:
    """Return the active user owning an unexpired token and when it expires, or (AnonymousUser, None).

    The handshakes of the moment share one query.
    """
    if len(key) > TOKEN_KEY_LENGTH:  # no such token: nothing to look up
        return AnonymousUser(), None
    users = await _token_lookups.get().submit(key)
    return users.get(key) or (AnonymousUser(), None)


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
    """Set scope["user"] from the handshake's token, or from its session cookie when it carries no token.

    Also scope["credential"]: the token or session key the socket was opened
    with, and scope["credential_expires_at"] for a token (users/credentials.py).
    """

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.by_session = AuthMiddlewareStack(SessionCredential(inner))

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Any:
        key = token_from_scope(scope)
        if key is None:
            return await self.by_session(scope, receive, send)
        user, expires_at = await user_for_token(key)
        credential = {"credential": key, "credential_expires_at": expires_at} if expires_at else {}
        return await self.inner({**scope, "user": user, **credential}, receive, send)


class SessionCredential:
    """Name the session key (read from the cookie, no query) as the socket's credential."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Any:
        session = scope.get("session")
        key = session.session_key if session is not None else None
        return await self.inner({**scope, "credential": key} if key else scope, receive, send)


class BrowserOriginValidator(OriginValidator):
    """Check Origin against ALLOWED_HOSTS; a handshake without Origin is not a browser's."""

    def valid_origin(self, parsed_origin: Any) -> bool:
        if parsed_origin is None:
            return True
        return super().valid_origin(parsed_origin)


def websocket_stack(inner: Any) -> Any:
    """Wrap the WebSocket router with origin checks and authentication."""
    return BrowserOriginValidator(TokenAuthMiddleware(inner), settings.ALLOWED_HOSTS)
