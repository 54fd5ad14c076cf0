"""Helpers of REST views: input serializers and query parameters, with the contract's errors."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from rest_framework import serializers
from rest_framework.exceptions import NotAuthenticated
from rest_framework.request import Request

from .errors import ValidationFailed


class StrictCharField(serializers.CharField):
    """A string field that refuses numbers and booleans instead of turning them into text.

    The WebSocket refuses `content: 5`; REST must not store it as "5".
    """

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


def request_user(request: Request) -> AbstractBaseUser:
    """Return the request's user, who the view's permissions already require to be signed in."""
    user = request.user
    if not isinstance(user, AbstractBaseUser):
        raise NotAuthenticated()
    return user


def validated(serializer_class: type[serializers.Serializer], data: Any) -> dict[str, Any]:
    """Validate request data with an input serializer, raising the contract's error."""
    serializer = serializer_class(data=data)
    if not serializer.is_valid():
        raise ValidationFailed(serializer.errors)
    return serializer.validated_data


def int_param(request: Request, name: str) -> int | None:
    """Return an optional non-negative integer query parameter."""
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return None
    try:
        value = int(raw)
    except ValueError:
        raise ValidationFailed({name: "Must be an integer."}) from None
    if value < 0:
        raise ValidationFailed({name: "Must not be negative."})
    return value
