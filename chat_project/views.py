"""JSON answers for errors that happen outside the REST framework's views."""

from django.http import HttpRequest, JsonResponse

from core.errors import error_body


def bad_request(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    """A request Django refused before any view (a Host header not in ALLOWED_HOSTS, say)."""
    return JsonResponse(error_body("bad_request", "Bad request."), status=400)


def not_found(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    return JsonResponse(error_body("not_found", "Not found."), status=404)


def server_error(request: HttpRequest) -> JsonResponse:
    return JsonResponse(error_body("server_error", "Internal error; it has been logged."), status=500)
