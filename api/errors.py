"""One error body everywhere: ``{"error": {"code", "message", "details", "request_id"}}``.

Every failure path maps to it — validation, auth, not found, rate limits, body too large, and
anything unexpected (logged with its traceback, answered as a 500 in the same shape).
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from loguru import logger
from starlette.exceptions import HTTPException as StarletteHTTPException

from parley.errors import ConfigError, ParleyError


class ApiError(Exception):
    """Raise in handlers: status, a stable machine code, a human message, optional details."""

    def __init__(
        self, status: int, code: str, message: str, details: list[dict[str, Any]] | None = None
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.details = status, code, message, details or []


def not_found(what: str) -> ApiError:
    return ApiError(404, "not_found", f"{what} not found")


_STATUS_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    429: "rate_limited",
}


def body(
    request: Request, status: int, code: str, message: str, details: list[dict[str, Any]]
) -> JSONResponse:
    rid = getattr(request.state, "request_id", None)
    payload = {"error": {"code": code, "message": message, "details": details, "request_id": rid}}
    return JSONResponse(payload, status_code=status)


def _validation_details(err: RequestValidationError) -> list[dict[str, Any]]:
    out = []
    for e in err.errors():
        loc = [str(p) for p in e.get("loc", ())]
        out.append(
            {"field": ".".join(loc), "message": str(e.get("msg", "")), "type": e.get("type")}
        )
    return out


def install(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api(request: Request, exc: ApiError) -> JSONResponse:
        return body(request, exc.status, exc.code, exc.message, exc.details)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        return body(
            request, 422, "validation_error", "the request is invalid", _validation_details(exc)
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _STATUS_CODES.get(exc.status_code, "error")
        return body(request, exc.status_code, code, str(exc.detail), [])

    @app.exception_handler(ConfigError)
    async def _config(request: Request, exc: ConfigError) -> JSONResponse:
        return body(request, 422, "invalid_config", str(exc), [])

    @app.exception_handler(ParleyError)
    async def _parley(request: Request, exc: ParleyError) -> JSONResponse:
        return body(request, 400, "bad_request", str(exc), [])

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        logger.opt(exception=exc).error(f"unhandled error on {request.method} {request.url.path}")
        return body(request, 500, "internal_error", "an unexpected error happened", [])
