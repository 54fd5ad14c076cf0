"""REST endpoints of accounts: register, obtain a token (who am I: users.api)."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from core.api import validated
from core.parsing import iso_utc
from core.ratelimit import client_address

from .services import user_register
from .throttles import login_with_password, register_attempt
from .tokens import token_expires_at, token_issue


class CredentialsIn(serializers.Serializer):
    username = serializers.CharField(max_length=150)
    password = serializers.CharField(max_length=128, trim_whitespace=False)


class UserOut(serializers.Serializer):
    id = serializers.CharField()
    username = serializers.CharField()


class TokenOut(serializers.Serializer):
    token = serializers.CharField()
    expiresAt = serializers.DateTimeField(help_text="After this, 401 token_expired: ask for a token again.")


def user_wire(user: AbstractBaseUser) -> dict[str, str]:
    return {"id": str(user.pk), "username": user.get_username()}


class RegisterView(APIView):
    permission_classes = [AllowAny]
    authentication_classes: list = []

    @extend_schema(request=CredentialsIn, responses={201: UserOut})
    def post(self, request: Request) -> Response:
        """Create an account; answer its id and username (then get a token from /api/auth/token/)."""
        data = validated(CredentialsIn, request.data)
        register_attempt(address=client_address(request))
        user = user_register(username=data["username"], password=data["password"])
        return Response(user_wire(user), status=status.HTTP_201_CREATED)


class TokenView(APIView):
    permission_classes = [AllowAny]
    authentication_classes: list = []

    @extend_schema(request=CredentialsIn, responses=TokenOut)
    def post(self, request: Request) -> Response:
        """Exchange a username and password for the user's API token (the same token every time)."""
        data = validated(CredentialsIn, request.data)
        user = login_with_password(request, username=data["username"], password=data["password"])
        token = token_issue(user=user)
        return Response({"token": token.key, "expiresAt": iso_utc(token_expires_at(token))})
