"""REST endpoints of the users directory and of signing in and out (PROTOCOL.md §5).

The web page signs in with a session (`POST /api/auth/session/`, CSRF
checked) and uses it for REST and the WebSocket alike; programs use a token.
`POST /api/auth/logout/` ends whichever the request came with.
"""

from __future__ import annotations

from django.contrib.auth import login, logout
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.authentication import SessionAuthentication
from rest_framework.authtoken.models import Token
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from core.api import StrictCharField, int_param, request_user, validated

from .credentials import credential_ended
from .limits import (
    MAX_DISPLAY_NAME_CHARS,
    MAX_SEARCH_CHARS,
    MIN_SUBSTRING_SEARCH_CHARS,
    SEARCH_DEFAULT_LIMIT,
    SEARCH_MAX_LIMIT,
)
from .selectors import user_get_active, users_search
from .services import profile_set_display_name
from .throttles import login_with_password

### Serializers ###


def online_field() -> serializers.BooleanField:
    """The `online` field of a user in answers (users/presence.py)."""
    return serializers.BooleanField(help_text="Whether the user has a socket open now.")


def last_seen_field() -> serializers.DateTimeField:
    """The `lastSeenAt` field of a user in answers (users/presence.py)."""
    return serializers.DateTimeField(
        allow_null=True, help_text="When the user's last socket closed; null while online or never seen."
    )


class PublicUserOut(serializers.Serializer):
    id = serializers.CharField()
    username = serializers.CharField()
    displayName = serializers.CharField(allow_blank=True, help_text="Empty when the user set none.")
    online = online_field()
    lastSeenAt = last_seen_field()


class UserListOut(serializers.Serializer):
    results = PublicUserOut(many=True)


class ProfileIn(serializers.Serializer):
    displayName = StrictCharField(
        max_length=MAX_DISPLAY_NAME_CHARS,
        allow_blank=True,
        help_text=f"The name others see: 0 to {MAX_DISPLAY_NAME_CHARS} characters (empty: the username).",
    )


class SessionLoginIn(serializers.Serializer):
    username = serializers.CharField(max_length=150)
    password = serializers.CharField(max_length=128, trim_whitespace=False)


### Views ###


class UserListView(APIView):
    @extend_schema(
        parameters=[
            OpenApiParameter(
                "search",
                str,
                description=(
                    f"Any part of a username or display name, any case (at most {MAX_SEARCH_CHARS} characters; "
                    f"under {MIN_SUBSTRING_SEARCH_CHARS}, the start of a name or of a word in it). Names that "
                    "start with it come first."
                ),
            ),
            OpenApiParameter("limit", int, description=f"1 to {SEARCH_MAX_LIMIT}, default {SEARCH_DEFAULT_LIMIT}."),
        ],
        responses=UserListOut,
        operation_id="users_list",
    )
    def get(self, request: Request) -> Response:
        """Find active users with `search` in their username or display name (any case), best matches first."""
        results = users_search(search=request.query_params.get("search"), limit=int_param(request, "limit"))
        return Response({"results": results})


class UserDetailView(APIView):
    @extend_schema(responses=PublicUserOut)
    def get(self, request: Request, user_id: str) -> Response:
        """Return one active user's id, username and display name."""
        return Response(user_get_active(user_id=user_id))


class MeView(APIView):
    @extend_schema(responses=PublicUserOut)
    def get(self, request: Request) -> Response:
        """Return the user the token or session belongs to."""
        return Response(user_get_active(user_id=request_user(request).pk))

    @extend_schema(request=ProfileIn, responses=PublicUserOut)
    def patch(self, request: Request) -> Response:
        """Set the user's display name (empty: others see the username)."""
        data = validated(ProfileIn, request.data)
        user = request_user(request)
        profile_set_display_name(user=user, display_name=data["displayName"])
        return Response(user_get_active(user_id=user.pk))


class SessionLoginView(APIView):
    permission_classes = [AllowAny]
    authentication_classes: list = []

    @extend_schema(request=SessionLoginIn, responses=PublicUserOut)
    def post(self, request: Request) -> Response:
        """Sign the browser in with a session cookie (the web page's login; CSRF token required)."""
        SessionAuthentication().enforce_csrf(request)
        data = validated(SessionLoginIn, request.data)
        # The same limits on failed logins as the token and admin logins.
        user = login_with_password(request, username=data["username"], password=data["password"])
        login(request._request, user)
        return Response(user_get_active(user_id=user.pk))


class LogoutView(APIView):
    @extend_schema(request=None, responses={204: None})
    def post(self, request: Request) -> Response:
        """Revoke the request's token, or end its session (CSRF token required); 204."""
        if isinstance(request.auth, Token):
            key = request.auth.key
            request.auth.delete()
        else:
            key = request.session.session_key
            logout(request._request)
        if key:
            credential_ended(key)  # the sockets opened with it close too
        return Response(status=status.HTTP_204_NO_CONTENT)
