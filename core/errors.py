"""Domain errors and the two places that turn them into client answers.

Services raise `DomainError` subclasses, each carrying a `code` from the
contract. `rest_exception_handler` maps them (and DRF's own exceptions) to
`{"code", "detail"}` JSON; `error_frame` maps them to a WebSocket `error`
frame. Nothing else formats errors, so both sides always agree.
"""

from __future__ import annotations

import logging
import math
from typing import Any

from django.http import Http404
from rest_framework import exceptions as drf_exceptions
from rest_framework import status
from rest_framework.response import Response

logger = logging.getLogger(__name__)


class DomainError(Exception):
    """An expected failure that a client is told about, with a contract code."""

    code = "server_error"
    http_status: int = status.HTTP_500_INTERNAL_SERVER_ERROR

    def __init__(self, detail: Any = None) -> None:
        self.detail = detail if detail is not None else self.default_detail()
        super().__init__(str(self.detail))

    def default_detail(self) -> str:
        """Describe the error when the raiser gave no detail."""
        return self.code.replace("_", " ")

    def frame_fields(self) -> dict[str, Any]:
        """Return fields the WebSocket `error` frame carries besides code and detail."""
        return {}

    def http_headers(self) -> dict[str, str]:
        """Return headers the REST answer carries."""
        return {}


class ValidationFailed(DomainError):
    code = "validation_error"
    http_status = status.HTTP_400_BAD_REQUEST


class NotFound(DomainError):
    """Unknown ids, and ids the user may not see: both answers are identical."""

    code = "not_found"
    http_status = status.HTTP_404_NOT_FOUND

    def default_detail(self) -> str:
        return "Not found."


class Forbidden(DomainError):
    """A member of a conversation without the right to what they asked (not an admin, not the sender)."""

    code = "forbidden"
    http_status = status.HTTP_403_FORBIDDEN

    def default_detail(self) -> str:
        return "You may not do this here."


class RateLimited(DomainError):
    code = "rate_limited"
    http_status = status.HTTP_429_TOO_MANY_REQUESTS

    def __init__(self, detail: Any = None, *, retry_after_seconds: float | None = None) -> None:
        self.retry_after_seconds = retry_after_seconds
        super().__init__(detail)

    def default_detail(self) -> str:
        return "Too many requests; slow down."

    def frame_fields(self) -> dict[str, Any]:
        if self.retry_after_seconds is None:
            return {}
        return {"retryAfterMs": max(1, math.ceil(self.retry_after_seconds * 1000))}

    def http_headers(self) -> dict[str, str]:
        return {} if self.retry_after_seconds is None else {"Retry-After": retry_after(self.retry_after_seconds)}


def retry_after(seconds: float) -> str:
    """Return a Retry-After value: whole seconds, at least one."""
    return str(max(1, math.ceil(seconds)))


def flatten_validation_detail(detail: Any) -> Any:
    """Turn DRF's ErrorDetail trees into plain JSON (strings, lists, dicts)."""
    if isinstance(detail, dict):
        return {str(k): flatten_validation_detail(v) for k, v in detail.items()}
    if isinstance(detail, list):
        return [flatten_validation_detail(v) for v in detail]
    return str(detail)


def error_body(code: str, detail: Any) -> dict[str, Any]:
    """Return the contract's error shape."""
    return {"code": code, "detail": flatten_validation_detail(detail)}


def rest_exception_handler(exc: Exception, context: dict[str, Any]) -> Response:
    """Map every exception a view raises to a JSON `{code, detail}` response."""
    if isinstance(exc, DomainError):
        return Response(error_body(exc.code, exc.detail), status=exc.http_status, headers=exc.http_headers())
    if isinstance(exc, Http404):
        return Response(error_body("not_found", "Not found."), status=status.HTTP_404_NOT_FOUND)
    if isinstance(exc, drf_exceptions.ValidationError):
        return Response(error_body("validation_error", exc.detail), status=status.HTTP_400_BAD_REQUEST)
    if isinstance(exc, drf_exceptions.ParseError):
        return Response(error_body("invalid_json", exc.detail), status=status.HTTP_400_BAD_REQUEST)
    if isinstance(exc, drf_exceptions.Throttled):
        wait = getattr(exc, "wait", None)  # set by Throttled.__init__; not in the stubs
        headers = {} if wait is None else {"Retry-After": retry_after(wait)}
        return Response(error_body("rate_limited", exc.detail), status=exc.status_code, headers=headers)
    if isinstance(exc, drf_exceptions.APIException):
        codes = exc.get_codes()
        code = codes if isinstance(codes, str) else "error"
        response = Response(error_body(code, exc.detail), status=exc.status_code)
        if isinstance(exc, drf_exceptions.NotAuthenticated | drf_exceptions.AuthenticationFailed):
            response["WWW-Authenticate"] = 'Token realm="api"'
            response.status_code = status.HTTP_401_UNAUTHORIZED
        return response
    logger.exception("Unhandled error in %s", context.get("view").__class__.__name__)
    return Response(
        error_body("server_error", "Internal error; it has been logged."),
        status=status.HTTP_500_INTERNAL_SERVER_ERROR,
    )


def error_frame(code: str, detail: Any, request_id: Any = None, **fields: Any) -> dict[str, Any]:
    """Build a WebSocket `error` frame."""
    return {"type": "error", "requestId": request_id, **error_body(code, detail), **fields}
