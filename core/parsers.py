"""The REST framework's JSON parser, with the contract's answers for hostile bodies."""

from __future__ import annotations

from collections.abc import Mapping
from typing import IO, Any

from rest_framework import parsers
from rest_framework.exceptions import ParseError

from .errors import ValidationFailed
from .parsing import BAD_TEXT_DETAIL, has_bad_text


class JSONParser(parsers.JSONParser):
    """Parses JSON bodies; too deep a nesting is `invalid_json`, a NUL or lone surrogate `validation_error`."""

    def parse(
        self, stream: IO[Any], media_type: str | None = None, parser_context: Mapping[str, Any] | None = None
    ) -> Any:
        try:
            data = super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise ParseError("JSON parse error - nested too deeply.") from None
        if has_bad_text(data):
            raise ValidationFailed({"detail": BAD_TEXT_DETAIL})
        return data
