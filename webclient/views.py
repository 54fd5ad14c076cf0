"""The web client: one page at `/` (and at `/c/<conversation id>`), its script and styles served as static files.

The page signs in with a session (the cookie also authenticates its
WebSocket), so it sets the CSRF cookie its script sends back as a header.
Its policy lets it load nothing but this server's files and talk to
nothing but this server: user content is only ever set as text, and the
policy is the second line of defence.

The site's icon is the page's too: browsers ask `/favicon.ico` of every page
(the API docs, the admin), and the page links the same file.
"""

from __future__ import annotations

import functools
from pathlib import Path

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.csrf import ensure_csrf_cookie
from django.views.decorators.http import require_safe

from users.limits import MAX_DISPLAY_NAME_CHARS

FAVICON = Path(__file__).resolve().parent / "static" / "webclient" / "favicon.svg"
# Browsers ask for the icon on every visit: a day in their cache.
FAVICON_MAX_AGE_SECONDS = 24 * 3600

CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)


@require_safe
@ensure_csrf_cookie
def index(request: HttpRequest, conversation_id: str | None = None) -> HttpResponse:
    """Serve the chat page (at `/c/<id>` too: the page opens that conversation, or says it is not found)."""
    response = render(
        request,
        "webclient/index.html",
        {
            "max_content_chars": settings.CHAT_MAX_CONTENT_CHARS,
            "max_display_name_chars": MAX_DISPLAY_NAME_CHARS,
        },
    )
    response["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    response["Cache-Control"] = "no-store"
    return response


@functools.cache
def _favicon_svg() -> bytes:
    return FAVICON.read_bytes()


@require_safe
def favicon(request: HttpRequest) -> HttpResponse:
    """Serve the site's icon at /favicon.ico, where browsers look for it."""
    response = HttpResponse(_favicon_svg(), content_type="image/svg+xml")
    response["Cache-Control"] = f"public, max-age={FAVICON_MAX_AGE_SECONDS}"
    return response
