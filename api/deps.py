"""Request dependencies: the caller (auth + rate limit) and a database connection scoped to it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Annotated

import asyncpg
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from api import auth, keys
from api.errors import ApiError
from api.ratelimit import RateLimiter
from api.settings import ApiSettings
from parley.db import as_user
from parley.settings import Settings

bearer = HTTPBearer(
    auto_error=False, description="A Supabase JWT or a Parley API key (pk_... or pub_...)"
)


@dataclass
class AppState:
    pool: asyncpg.Pool
    settings: ApiSettings
    limiter: RateLimiter
    core: Settings  # providers' keys, data dir


def state(request: Request) -> AppState:
    st: AppState = request.app.state.parley
    return st


async def principal(
    request: Request,
    creds: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> auth.Principal:
    if creds is None or creds.scheme.lower() != "bearer" or not creds.credentials:
        raise ApiError(401, "unauthorized", "send Authorization: Bearer <API key or JWT>")
    st = state(request)
    token = creds.credentials
    address = request.client.host if request.client else "-"
    if wait := await st.limiter.auth_blocked(address):
        raise ApiError(
            429, "rate_limited", f"too many failed authentications; retry in {wait:.0f} s"
        )
    try:
        async with st.pool.acquire() as conn:
            if keys.is_api_key(token):
                who = await auth.from_api_key(conn, token)
            else:
                org = request.headers.get("x-parley-org")
                who = await auth.from_jwt(conn, token, org, st.settings)
    except ApiError as err:
        if err.status == 401:
            await st.limiter.auth_failed(address)
        raise
    if wait := await st.limiter.take(who.rate_key):
        raise ApiError(429, "rate_limited", f"too many requests; retry in {wait:.1f} s")
    authorize(who, request)
    request.state.org_id = str(who.org_id)
    return who


# The scope each API area needs; an area not listed needs ``admin`` (safe for new routes).
ROUTE_SCOPES = {
    "/v1/agents": "agents",
    "/v1/sessions": "agents",
    "/v1/knowledge-bases": "knowledge",
    "/v1/contacts": "contacts",
    "/v1/calls": "calls",
}
# All a publishable (browser) key may do: list its agents, start and connect web sessions.
PUBLISHABLE_ROUTES = {
    ("GET", "/v1/agents"),
    ("POST", "/v1/sessions/web"),
    ("POST", "/v1/sessions/web/{call_id}/offer"),
}


def authorize(who: auth.Principal, request: Request) -> None:
    """Scopes of secret keys, the narrow rights and origins of publishable keys."""
    route = request.scope.get("route")
    path: str = getattr(route, "path", request.url.path)
    if who.publishable:
        if (request.method, path) not in PUBLISHABLE_ROUTES:
            raise ApiError(
                403, "forbidden", "a publishable key may only list its agents and start sessions"
            )
        origin = request.headers.get("origin")
        if who.allowed_origins and origin is not None and origin not in who.allowed_origins:
            raise ApiError(403, "forbidden", "this key is not allowed from this origin")
        return
    area = "/".join(path.split("/")[:3])
    needed = ROUTE_SCOPES.get(area, "admin")
    if needed not in who.scopes:
        raise ApiError(403, "forbidden", f"this API key lacks the {needed!r} scope")


Caller = Annotated[auth.Principal, Depends(principal)]


@asynccontextmanager
async def transaction(pool: asyncpg.Pool, who: auth.Principal) -> AsyncIterator[asyncpg.Connection]:
    """A transaction as ``who``: JWT callers run as themselves under RLS (defence in depth on
    top of the explicit org filter every query has); API-key callers on the service path."""
    async with pool.acquire() as conn:
        if who.user_id is not None:
            async with as_user(conn, who.user_id) as c:
                yield c
        else:
            async with conn.transaction():
                yield conn


async def connection(request: Request, who: Caller) -> AsyncIterator[asyncpg.Connection]:
    """One transaction per request (committed after the handler returns)."""
    async with transaction(state(request).pool, who) as conn:
        yield conn


Db = Annotated[asyncpg.Connection, Depends(connection)]


async def _org_admin(who: Caller, db: Db) -> None:
    # API keys reach admin routes only with the ``admin`` scope (``authorize``); signed-in
    # users must be owners or admins. RLS would only hide rows from a plain member (an empty
    # list, a 404): say why instead.
    if who.user_id is not None and not await db.fetchval(
        "select private.has_role($1, array['owner', 'admin'])", who.org_id
    ):
        raise ApiError(403, "forbidden", "only owners and admins of the organization may do this")


OrgAdmin = Depends(_org_admin)
