"""Request dependencies: the caller (auth + rate limit) and a database connection scoped to it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Annotated

import asyncpg
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from api import auth
from api.errors import ApiError
from api.ratelimit import RateLimiter
from api.settings import ApiSettings
from parley.db import as_user
from parley.settings import Settings

bearer = HTTPBearer(auto_error=False, description="A Supabase JWT or a Parley API key (pk_...)")


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
    async with st.pool.acquire() as conn:
        if token.startswith("pk_"):
            who = await auth.from_api_key(conn, token)
        else:
            who = await auth.from_jwt(conn, token, request.headers.get("x-parley-org"), st.settings)
    wait = st.limiter.take(who.rate_key)
    if wait > 0:
        raise ApiError(429, "rate_limited", f"too many requests; retry in {wait:.1f} s")
    request.state.org_id = str(who.org_id)
    return who


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
