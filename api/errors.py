"""One error body everywhere: ``{"error": {"code", "message", "details", "request_id"}}``.

Every failure path maps to it — validation, auth, not found, rate limits, body too large, and
anything unexpected (logged with its traceback, answered as a 500 in the same shape).
"""

from __future__ import annotations

from typing import Any

import asyncpg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from loguru import logger
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match, Route

from parley.errors import ConfigError, ParleyError


class ApiError(Exception):
    """Raise in handlers: status, a stable machine code, a human message, optional details."""

    def __init__(
        self, status: int, code: str, message: str, details: list[dict[str, Any]] | None = None
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.details = status, code, message, details or []


class ErrorInfo(BaseModel):
    code: str = Field(description="Stable, machine-readable: not_found, conflict, ...")
    message: str = Field(description="For people: what went wrong and how to fix it.")
    details: list[dict[str, Any]] = Field(
        default_factory=list, description="Per-field problems: {field, message, ...}."
    )
    request_id: str | None = Field(None, description="Also sent as the X-Request-Id header.")


class ErrorBody(BaseModel):
    """The documented form of the one error body (every non-2xx answer)."""

    error: ErrorInfo


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
    request: Request,
    status: int,
    code: str,
    message: str,
    details: list[dict[str, Any]],
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    rid = getattr(request.state, "request_id", None)
    payload = {"error": {"code": code, "message": message, "details": details, "request_id": rid}}
    return JSONResponse(payload, status_code=status, headers=headers)


def _validation_details(err: RequestValidationError) -> list[dict[str, Any]]:
    out = []
    for e in err.errors():
        loc = [str(p) for p in e.get("loc", ())]
        out.append(
            {"field": ".".join(loc), "message": str(e.get("msg", "")), "type": e.get("type")}
        )
    return out


def _allowed_methods(request: Request) -> str:
    """All methods of the path for a 405's ``Allow`` (RFC 9110). Starlette names only those of
    the first route matching the path, e.g. POST alone for GET+POST /v1/agents."""
    methods: set[str] = set()
    for route in request.app.router.routes:
        if isinstance(route, Route) and route.matches(request.scope)[0] != Match.NONE:
            methods |= route.methods or set()
    return ", ".join(sorted(methods))


def install(app: FastAPI) -> None:
    # Document the error body on every route included after this (the app router's responses
    # are merged into each). A "default" response also stops FastAPI from documenting its own
    # 422 body, which is not the one sent.
    doc = {"model": ErrorBody, "description": "Any error (see `error.code`)"}
    app.router.responses = {"default": doc, **app.router.responses}

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
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            headers["Allow"] = _allowed_methods(request)
        return body(request, exc.status_code, code, str(exc.detail), [], headers)

    @app.exception_handler(asyncpg.UntranslatableCharacterError)
    @app.exception_handler(asyncpg.CharacterNotInRepertoireError)
    async def _nul(request: Request, exc: asyncpg.PostgresError) -> JSONResponse:
        # Postgres text and jsonb cannot hold NUL: a client's input, not a server failure.
        # Safety net for routes that do not refuse it at the edge (found by fuzzing).
        return body(
            request,
            422,
            "validation_error",
            "text must not contain NUL (\\u0000) characters; remove them and retry",
            [],
        )

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
