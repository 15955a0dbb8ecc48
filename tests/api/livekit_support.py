"""An API client whose core settings say LiveKit is (or is not) configured, signed LiveKit
webhook deliveries, and web call rows, for the sessions and webhook tests."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import asyncpg
import httpx
from fastapi import FastAPI
from google.protobuf.json_format import MessageToJson
from livekit import api as lk
from livekit.protocol.webhook import WebhookEvent

from api.app import create_app
from api.settings import ApiSettings
from parley.db.settings import DatabaseSettings
from parley.settings import Settings
from tests.api.conftest import JWT_SECRET, Tenant
from tests.db.conftest import insert

KEY = "test-livekit-key"
SECRET = "test-livekit-secret-that-is-long-enough"
# Nothing listens on port 1 of loopback: dispatch fails at once with "connection refused".
UNREACHABLE = "ws://127.0.0.1:1"
PUBLIC_URL = "wss://livekit.example.test"


def livekit_settings(tmp_path: Path, url: str | None = UNREACHABLE, **extra: Any) -> Settings:
    values: dict[str, Any] = {"data_dir": tmp_path, "openai_api_key": "test-key", **extra}
    if url is not None:
        values.update(livekit_url=url, livekit_api_key=KEY, livekit_api_secret=SECRET)
    return Settings(**values)


@asynccontextmanager
async def client(
    db_url: str, settings: Settings, *, app_state: dict[str, Any] | None = None
) -> AsyncIterator[tuple[httpx.AsyncClient, FastAPI]]:
    app = create_app(
        settings=settings,
        api_settings=ApiSettings(
            supabase_jwt_secret=JWT_SECRET, rate_burst=10_000, max_body_bytes=200_000
        ),
        db_settings=DatabaseSettings(url=db_url),
    )
    for name, value in (app_state or {}).items():
        setattr(app.state, name, value)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as c:
            yield c, app


def signature(body: str, *, secret: str = SECRET, key: str = KEY) -> str:
    """The Authorization header livekit-server sends with ``body``: a JWT over its SHA-256."""
    digest = base64.b64encode(hashlib.sha256(body.encode()).digest()).decode()
    return lk.AccessToken(key, secret).with_sha256(digest).to_jwt()


def signed(event: WebhookEvent, *, secret: str = SECRET, key: str = KEY) -> tuple[str, str]:
    """(body, Authorization header value) as livekit-server sends them."""
    body = MessageToJson(event)
    return body, signature(body, secret=secret, key=key)


async def insert_call(conn: asyncpg.Connection, tenant: Tenant, **cols: object) -> UUID:
    """A call of ``tenant``'s agent as ``POST /v1/sessions/web`` makes it (web, status created,
    a room of its own); ``cols`` set or override columns."""
    values: dict[str, object] = {
        "org_id": tenant.org.id,
        "agent_id": tenant.org.rows["agents"],
        "direction": "web",
        "room_name": f"web-{uuid4().hex}",
        **cols,
    }
    return await insert(conn, "calls", values)
