"""Shared by the routers: their documented error responses (the body is api.errors.ErrorBody,
so the OpenAPI matches what is sent), and validators for values every route treats the same
way (text without NUL, JSON objects, ISO timestamps, cursors)."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator

from api.errors import ApiError, ErrorBody

_DESCRIPTIONS = {
    400: "Bad request (e.g. an invalid cursor)",
    401: "Missing, invalid or revoked credentials",
    403: "Not allowed for this caller",
    404: "Not found (also for other organizations' objects)",
    409: "Conflicts with an existing object",
    413: "Request body too large",
    415: "Unsupported content type",
    422: "Invalid request: `details` names each field",
    429: "Rate limited: retry after the time in the message",
}


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """``responses=`` for a router or route: these codes, described, with the one error body.
    (Any other code is documented by the app-wide ``default`` of api.errors.install.)"""
    return {
        code: {"model": ErrorBody, "description": _DESCRIPTIONS.get(code, "Error")}
        for code in codes
    }


# What every authenticated /v1 router can answer besides its own successes.
COMMON_ERRORS = error_responses(401, 422, 429)


def utc(value: datetime | None, field: str) -> datetime | None:
    """Timestamps from query strings: naive ones are UTC; out-of-range ones are a 422, not a
    500 (``0001-01-01T00:00+05:00`` parses but cannot be converted to UTC)."""
    if value is None:
        return None
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    try:
        return value.astimezone(UTC)
    except OverflowError as err:
        raise ApiError(
            422,
            "validation_error",
            "the request is invalid",
            [{"field": field, "message": "timestamp out of range", "type": "value_error"}],
        ) from err


def _has_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_nul(v) for v in value)
    return False


def check_text(value: str) -> str:
    # Postgres text cannot hold NUL: refused here with a message instead of failing in the DB.
    if "\x00" in value:
        raise ValueError("must not contain NUL (\\u0000) characters")
    return value


def _json_object(value: dict[str, Any]) -> dict[str, Any]:
    if _has_nul(value):
        raise ValueError("must not contain NUL (\\u0000) characters")
    try:
        json.dumps(value, allow_nan=False)
    except ValueError as err:
        raise ValueError("numbers must be finite (no NaN or Infinity)") from err
    return value


Text = Annotated[str, AfterValidator(check_text)]
JsonObject = Annotated[dict[str, Any], AfterValidator(_json_object)]


_NUMBER = re.compile(r"\s*[-+]?[0-9]+(\.[0-9]*)?\s*")


def _iso_only(value: Any) -> Any:
    # Pydantic would read "0.5" as a Unix time; the documented format is ISO 8601 only.
    if isinstance(value, str) and _NUMBER.fullmatch(value):
        raise ValueError("use an ISO 8601 timestamp, e.g. 2026-03-01T12:00:00Z")
    return value


IsoDatetime = Annotated[datetime, BeforeValidator(_iso_only)]
