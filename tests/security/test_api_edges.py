"""Issue 10, finding 8: the smaller edges. A multipart content type does not raise the body
limit outside the upload routes; /readyz tells anonymous callers "database unavailable", not
the driver's error; members read calls and turns but only admins and the service change them.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest

from api.app import create_app
from api.deps import AppState
from api.ratelimit import RateLimiter
from api.settings import ApiSettings
from parley.db import as_user
from parley.db.settings import DatabaseSettings
from parley.settings import Settings
from tests.api.conftest import (
    JWT_SECRET,
    Tenant,
    api,
    conn,
    db_url,
    migrated_template,
    pg_server,
    world,
)

__all__ = ["api", "conn", "db_url", "migrated_template", "pg_server", "world"]


async def test_multipart_content_type_keeps_the_json_limit(
    api: httpx.AsyncClient, world: dict[str, Tenant]
) -> None:
    # The `api` fixture allows 200 kB JSON bodies and 20 MB uploads.
    body = b"--b\r\n" + b"x" * 300_000 + b"\r\n--b--\r\n"
    h = {**world["A"].key_headers(), "content-type": "multipart/form-data; boundary=b"}
    r = await api.post("/v1/agents", content=body, headers=h)
    assert r.status_code == 413, r.text
    assert r.json()["error"]["code"] == "payload_too_large"


async def test_readyz_hides_the_database_error(tmp_path: Path) -> None:
    # A database that is not there: a port nothing listens on, with a telling user name.
    url = "postgresql://secret_user:pw@127.0.0.1:9/parley"
    app = create_app(
        settings=Settings(data_dir=tmp_path),  # type: ignore[call-arg]
        api_settings=ApiSettings(supabase_jwt_secret=JWT_SECRET),
        db_settings=DatabaseSettings(url=url, auto_migrate=False),
    )
    transport = httpx.ASGITransport(app=app)
    # The pool is lazy about failures only inside its lifespan: run readyz against a state
    # whose pool can't connect.
    pool = asyncpg.create_pool(url, min_size=0, max_size=1, timeout=2)
    await pool  # min_size=0: opens nothing yet
    app.state.parley = AppState(
        pool=pool,
        settings=ApiSettings(),
        limiter=RateLimiter(1, 1),
        core=Settings(),  # type: ignore[call-arg]
    )
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as c:
            r = await c.get("/readyz")
    finally:
        await pool.close()
    assert r.status_code == 503, r.text
    assert r.json()["error"]["message"] == "database unavailable"
    assert "secret_user" not in r.text and "127.0.0.1" not in r.text


async def test_members_read_calls_but_cannot_change_them(
    conn: asyncpg.Connection, world: dict[str, Tenant]
) -> None:
    org = world["A"].org
    call = await conn.fetchval("select id from public.calls where org_id = $1 limit 1", org.id)
    assert org.member is not None
    async with as_user(conn, org.member) as c:
        assert await c.fetchval("select count(*) from public.calls") >= 1
        changed = await c.execute("update public.calls set end_reason = 'x' where id = $1", call)
        deleted = await c.execute("delete from public.call_turns where org_id = $1", org.id)
    assert changed == "UPDATE 0" and deleted == "DELETE 0"
    async with as_user(conn, org.owner) as c:
        changed = await c.execute("update public.calls set end_reason = 'x' where id = $1", call)
    assert changed == "UPDATE 1"
    assert uuid.UUID(str(call))


async def test_failed_authentications_are_limited_per_address(
    db_url: str, world: dict[str, Tenant], tmp_path: Path
) -> None:
    app = create_app(
        settings=Settings(data_dir=tmp_path),  # type: ignore[call-arg]
        api_settings=ApiSettings(supabase_jwt_secret=JWT_SECRET, failed_auth_per_min=5),
        db_settings=DatabaseSettings(url=db_url),
    )
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, client=("203.0.113.7", 1234))
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as c:
            guesses = [
                (await c.get("/v1/agents", headers={"Authorization": f"Bearer pk_{i:08d}_x"}))
                for i in range(7)
            ]
            # Even the right key waits once the address is blocked.
            right = await c.get("/v1/agents", headers=world["A"].key_headers())
        other = httpx.ASGITransport(app=app, client=("203.0.113.8", 1234))
        async with httpx.AsyncClient(transport=other, base_url="http://api") as c:
            elsewhere = await c.get("/v1/agents", headers=world["A"].key_headers())
    assert [g.status_code for g in guesses] == [401] * 5 + [429] * 2
    assert right.status_code == 429 and elsewhere.status_code == 200


@pytest.fixture
def redis_url(tmp_path: Path) -> Iterator[str]:
    """A real redis-server on a free loopback port."""
    redis = shutil.which("redis-server")
    if redis is None:
        pytest.skip("redis-server is not installed (scripts/setup.sh installs it)")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    args = ["--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    proc = subprocess.Popen([redis, *args], stdout=subprocess.DEVNULL, cwd=tmp_path)
    try:
        for _ in range(100):
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port)):
                break
            time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        proc.wait(5)


async def test_rate_limits_are_shared_through_redis(redis_url: str) -> None:
    # Two API replicas: each allows 4 requests per key in its window, together still 4.
    one = RateLimiter(0.01, 4, storage_url=redis_url)
    two = RateLimiter(0.01, 4, storage_url=redis_url)
    taken = [await (one if i % 2 else two).take("key:k") for i in range(6)]
    assert [t == 0 for t in taken] == [True] * 4 + [False] * 2
