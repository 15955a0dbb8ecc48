"""An API client on a fresh migrated database, and two organizations with credentials."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import httpx
import jwt
import pytest_asyncio

from api.app import create_app
from api.auth import ALL_SCOPES
from api.keys import new_key
from api.settings import ApiSettings
from parley.db import connect
from parley.db.settings import DatabaseSettings
from parley.db.testing import db_url, migrated_template, pg_server
from parley.settings import Settings
from tests.db.conftest import Org, build_world, conn

# ``conn``: a service-path connection (bypasses RLS), for seeding and checking rows.
__all__ = ["api", "conn", "db_url", "migrated_template", "pg_server", "world"]

JWT_SECRET = "test-jwt-secret-with-at-least-32-characters!"


def user_token(user_id: uuid.UUID, *, secret: str = JWT_SECRET, ttl: int = 3600) -> str:
    """A token shaped like Supabase Auth's (HS256, aud=authenticated, sub=user id)."""
    now = int(time.time())
    claims = {
        "sub": str(user_id),
        "aud": "authenticated",
        "role": "authenticated",
        "iat": now,
        "exp": now + ttl,
        "email": f"{user_id}@example.com",
    }
    return jwt.encode(claims, secret, algorithm="HS256")


@dataclass
class Tenant:
    org: Org
    api_key: str  # pk_... for the org
    jwt: str  # the org owner's Supabase token

    def key_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"}

    def jwt_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.jwt}"}


@pytest_asyncio.fixture
async def world(db_url: str) -> AsyncIterator[dict[str, Tenant]]:
    conn: asyncpg.Connection = await connect(db_url)
    try:
        orgs = await build_world(conn)
        tenants = {}
        for name, org in orgs.items():
            key = new_key()
            await conn.execute(
                "insert into public.api_keys (org_id, name, prefix, key_hash, scopes)"
                " values ($1, $2, $3, $4, $5)",
                org.id,
                "test",
                key.prefix,
                key.hash,
                list(ALL_SCOPES),  # the organization's full key, key administration included
            )
            tenants[name] = Tenant(org, key.token, user_token(org.owner))
        yield tenants
    finally:
        await conn.close()


@pytest_asyncio.fixture
async def api(
    db_url: str, world: dict[str, Tenant], tmp_path: Path
) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(
        settings=Settings(data_dir=tmp_path, openai_api_key="test-key"),  # type: ignore[call-arg]
        api_settings=ApiSettings(
            supabase_jwt_secret=JWT_SECRET, rate_burst=10_000, max_body_bytes=200_000
        ),
        db_settings=DatabaseSettings(url=db_url),
    )
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
            yield client
