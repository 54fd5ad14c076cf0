"""Limits on guessing passwords and on creating accounts.

Failed logins are counted per username (regardless of case) and per client
address, in Redis, for the token endpoint and the admin's login page alike.
An attempt counts while it is under way and a successful one gives its
count back, so parallel guesses cannot slip past the check before their
failures are recorded. Over either limit the attempt is refused before the
password is hashed: 429 `rate_limited` with `Retry-After`, whatever the
password. Registrations are counted per address, successful or not.

A username can be locked out of password login by someone who guesses at
it, for as long as the failures stay within the window of
CHAT_LOGIN_RATE_PER_USERNAME (minutes, not a day).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from django.conf import settings
from django.contrib import admin
from django.contrib.auth import authenticate
from django.contrib.auth.models import User
from django.http import HttpRequest, HttpResponse
from django.utils.html import escape

from core.errors import RateLimited, ValidationFailed, retry_after
from core.ratelimit import Spend, check, client_address, limit_key, parse_rate

from .usernames import username_key


def _login_spends(username: str, address: str) -> list[Spend]:
    return [
        Spend(limit_key("login-user", username_key(username)), parse_rate(settings.CHAT_LOGIN_RATE_PER_USERNAME)),
        Spend(limit_key("login-address", address), parse_rate(settings.CHAT_LOGIN_RATE_PER_ADDRESS)),
    ]


def login_attempt_begin(*, username: str, address: str) -> None:
    """Count a login attempt for the name and the address; raise RateLimited if either has failed too often."""
    verdict = check(_login_spends(username, address))
    if not verdict.allowed:
        raise RateLimited("Too many failed logins; try again later.", retry_after_seconds=verdict.wait_seconds)


def login_attempt_succeeded(*, username: str, address: str) -> None:
    """Give back the count of an attempt that logged in: only failures are limited."""
    check([replace(spend, mode="refund") for spend in _login_spends(username, address)])


def login_with_password(request: Any, *, username: str, password: str) -> User:
    """Authenticate a REST login within the limits on failed logins; raise ValidationFailed on bad credentials."""
    attempt = {"username": username, "address": client_address(request)}
    login_attempt_begin(**attempt)
    user = authenticate(request, username=username, password=password)
    if user is None:
        raise ValidationFailed("Unable to log in with these credentials.")
    login_attempt_succeeded(**attempt)
    return user


def register_attempt(*, address: str) -> None:
    """Count a registration from the address; raise RateLimited over CHAT_REGISTER_RATE_PER_ADDRESS."""
    rate = parse_rate(settings.CHAT_REGISTER_RATE_PER_ADDRESS)
    verdict = check([Spend(limit_key("register-address", address), rate)])
    if not verdict.allowed:
        detail = "Too many new accounts from this address; try again later."
        raise RateLimited(detail, retry_after_seconds=verdict.wait_seconds)


### The admin's login page ###

REFUSED_PAGE = """<!doctype html>
<html><head><title>Too many attempts</title></head>
<body><h1>Too many login attempts</h1><p>{detail} Try again in {seconds} seconds.</p></body></html>
"""


def admin_login(request: HttpRequest, **kwargs: Any) -> HttpResponse:
    """The admin's login view, with the same limits on failed logins as the API."""
    if request.method != "POST":
        return admin.site.login(request, **kwargs)
    username, address = request.POST.get("username", ""), client_address(request)
    try:
        login_attempt_begin(username=username, address=address)
    except RateLimited as exc:
        seconds = retry_after(exc.retry_after_seconds or 1)
        page = REFUSED_PAGE.format(detail=escape(str(exc.detail)), seconds=seconds)
        return HttpResponse(page, status=429, headers={"Retry-After": seconds})
    response = admin.site.login(request, **kwargs)
    if response.status_code == 302 and request.user.is_authenticated:
        login_attempt_succeeded(username=username, address=address)
    return response
