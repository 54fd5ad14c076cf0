"""The OpenAPI schema's conventions, applied to every endpoint in one place.

Every error answer has the contract's shape (`ErrorOut`, made by
core.errors), so each operation lists the errors it can give from
what the view is: input to validate (400), a login to require (401), a
right to check (403, with 400 for what cannot be done: `rights_checked_on`
names those methods), an id in the path (404), a throttle (429). Responses and path parameters that the views
leave undescribed get the project's wording here.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.openapi import AutoSchema
from drf_spectacular.utils import OpenApiResponse
from rest_framework import serializers
from rest_framework.permissions import AllowAny


class ErrorOut(serializers.Serializer):
    code = serializers.CharField(
        help_text="What went wrong, from the contract: validation_error, invalid_json, not_authenticated, "
        "authentication_failed, forbidden, not_found, rate_limited, server_error, ..."
    )
    detail = serializers.JSONField(
        help_text="A sentence for people; for validation_error, the problems by field name (an object)."
    )


ERRORS = {
    400: "The input is not valid (`validation_error`, `invalid_json`); `detail` says what is wrong. Nothing changed.",
    401: "No valid token or session (`not_authenticated`, `authentication_failed`).",
    403: "A member without the right to this (`forbidden`): not a group admin, or not the message's sender.",
    404: "No such id among those this user may see (`not_found`); unknown and forbidden ids answer alike.",
    429: "Too many requests (`rate_limited`): slow down and try again later.",
}

SUCCESS = {
    "200": "OK.",
    "201": "Created.",
    "204": "Done; no body.",
}

PATH_PARAMETERS = {
    "conversation_id": "The conversation's id (a UUID), as the conversation list gives it.",
    "notification_id": "The notification's id, as the notification list gives it.",
    "user_id": "The user's id, as the conversation's participants give it.",
    "message_id": "The message's id (a UUID), as history and message frames give it.",
}


class ChatAutoSchema(AutoSchema):
    """drf-spectacular's schema plus the contract's error answers and the descriptions views leave empty."""

    def get_operation(self, *args: Any, **kwargs: Any) -> dict[str, Any] | None:
        """Describe one operation, with its error responses and no empty descriptions."""
        operation = super().get_operation(*args, **kwargs)
        if operation is None:
            return None
        for parameter in operation.get("parameters", []):
            if parameter["in"] == "path" and not parameter.get("description"):
                parameter["description"] = PATH_PARAMETERS.get(parameter["name"], parameter["name"])
        responses = operation["responses"]
        for code, response in responses.items():
            if not response.get("description"):
                response["description"] = SUCCESS.get(code, "")
        for status_code in self.error_codes(takes_body="requestBody" in operation):
            responses.setdefault(
                str(status_code),
                self._get_response_for_code(
                    OpenApiResponse(ErrorOut, description=ERRORS[status_code]), str(status_code)
                ),
            )
        return operation

    def error_codes(self, *, takes_body: bool) -> list[int]:
        """Return the error statuses this operation can answer, from what its view checks."""
        codes = []
        # Bodies are validated; so are the integer query parameters a view declares (int_param).
        parses_numbers = any(getattr(p, "type", None) is int for p in self.get_override_parameters())
        checks_rights = self.method in getattr(self.view, "rights_checked_on", ())
        if takes_body or parses_numbers or checks_rights:
            codes.append(400)
        if not any(isinstance(p, AllowAny) for p in self.view.get_permissions()):
            codes.append(401)
        if checks_rights:
            codes.append(403)
        if "{" in self.path:
            codes.append(404)
        if self.view.get_throttles():
            codes.append(429)
        return codes
