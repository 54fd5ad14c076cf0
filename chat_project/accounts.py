"""REST endpoints of accounts: register, obtain a token (who am I: users.api)."""

from __future__ import annotations

from django.contrib.auth import get_user_model, password_validation
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import IntegrityError, transaction
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from core.api import validated
from core.errors import ValidationFailed
from core.parsing import iso_utc
from core.ratelimit import client_address
from users.throttles import login_with_password, register_attempt
from users.tokens import token_expires_at, token_issue
from users.usernames import check_username, username_taken

User = get_user_model()


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


def user_register(*, username: str, password: str) -> AbstractBaseUser:
    """Create an account; raise ValidationFailed on a taken name (in any case) or a weak password."""
    username = check_username(username)
    try:
        password_validation.validate_password(password, User(username=username))
    except DjangoValidationError as exc:
        raise ValidationFailed({"detail": exc.messages}) from None
    if username_taken(username):
        raise ValidationFailed({"username": "This username is taken."})
    try:
        with transaction.atomic():
            return User.objects.create_user(username=username, password=password)
    except IntegrityError:
        raise ValidationFailed({"username": "This username is taken."}) from None


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
