"""`/api/`: what the API offers, read from the URL patterns themselves, and where its docs are."""

from __future__ import annotations

import re
from typing import Any

from django.urls import URLPattern, URLResolver, reverse
from drf_spectacular.utils import extend_schema
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

HTTP_METHODS = ("get", "post", "put", "patch", "delete")


def first_line(text: str | None) -> str:
    """Return the first line of a docstring ('' when there is none)."""
    return (text or "").strip().split("\n", 1)[0]


def endpoint_list(patterns: list[URLPattern | URLResolver], prefix: str) -> list[dict[str, Any]]:
    """Describe each REST endpoint: its path and, per method, the first line of the method's docstring."""
    endpoints = []
    for pattern in patterns:
        if not isinstance(pattern, URLPattern):
            continue  # the API has no nested includes
        view = getattr(pattern.callback, "view_class", None)
        if view is None or view.__module__.startswith("drf_spectacular"):
            continue
        path = prefix + re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", str(pattern.pattern))
        methods = {m.upper(): first_line(getattr(view, m).__doc__) for m in HTTP_METHODS if hasattr(view, m)}
        endpoints.append({"path": path, "methods": methods})
    return endpoints


class ApiIndexView(APIView):
    """List the REST endpoints, the WebSocket and the API's documentation."""

    permission_classes = [AllowAny]
    authentication_classes: list = []
    # The API's URL patterns, given by chat_project.urls (which imports this module).
    patterns: list[URLPattern | URLResolver] = []

    @extend_schema(exclude=True)
    def get(self, request: Request) -> Response:
        """List the REST endpoints, the WebSocket and the API's documentation."""
        return Response(
            {
                "name": "Chat service API",
                "version": "1",
                "docs": {
                    "swagger_ui": request.build_absolute_uri(reverse("api-docs")),
                    "redoc": request.build_absolute_uri(reverse("api-redoc")),
                    "openapi_schema": request.build_absolute_uri(reverse("schema")),
                },
                "authentication": "Authorization: Token <token>, from POST /api/auth/token/; or a session.",
                "websocket": request.build_absolute_uri("/ws/chat/").replace("http", "ws", 1),
                "endpoints": endpoint_list(self.patterns, "/api/"),
            }
        )
