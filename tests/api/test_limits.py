"""Edges of the HTTP surface: body limit (413), per-key rate limit (429), CORS preflight, the
OpenAPI document and docs page, and the health probes. Errors keep the one error shape."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx

from api.app import create_app
from api.settings import ApiSettings
from parley.db.settings import DatabaseSettings
from parley.settings import Settings
from tests.api.conftest import JWT_SECRET, Tenant

ORIGIN = "https://app.example.com"


@asynccontextmanager
async def client(db_url: str, tmp_path: Path, **api: Any) -> AsyncIterator[httpx.AsyncClient]:
    """The app with its own API settings (the `api` fixture's are generous on purpose)."""
    app = create_app(
        settings=Settings(data_dir=tmp_path),
        api_settings=ApiSettings(supabase_jwt_secret=JWT_SECRET, **api),
        db_settings=DatabaseSettings(url=db_url),
    )
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as c:
            yield c


def assert_error_shape(r: httpx.Response, status: int, code: str) -> None:
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert err["code"] == code and err["message"] and isinstance(err["details"], list)
    assert err["request_id"] and r.headers.get("content-type", "").startswith("application/json")


async def test_body_over_the_limit_is_413(api: httpx.AsyncClient, world: dict[str, Tenant]) -> None:
    # The `api` fixture allows 200 kB JSON bodies.
    h = world["A"].key_headers()
    body = {"phone": "+14155550123", "metadata": {"blob": "x" * 300_000}}
    assert_error_shape(
        await api.post("/v1/contacts", json=body, headers=h), 413, "payload_too_large"
    )

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: counted as it streams
        yield b'{"phone": "+14155550123", "metadata": {"blob": "'
        for _ in range(30):
            yield b"x" * 10_000
        yield b'"}}'

    streamed = await api.post(
        "/v1/contacts", content=chunks(), headers={**h, "content-type": "application/json"}
    )
    assert_error_shape(streamed, 413, "payload_too_large")
    assert (await api.get("/v1/contacts", headers=h)).json()["items"][0]["phone"] != "+14155550123"


async def test_rate_limit_per_key(db_url: str, world: dict[str, Tenant], tmp_path: Path) -> None:
    async with client(db_url, tmp_path, rate_burst=3, rate_per_sec=0.01) as c:
        a, b = world["A"], world["B"]
        for _ in range(3):
            assert (await c.get("/v1/agents", headers=a.key_headers())).status_code == 200
        limited = await c.get("/v1/agents", headers=a.key_headers())
        assert_error_shape(limited, 429, "rate_limited")
        assert "retry in" in limited.json()["error"]["message"]
        # Buckets are per credential: B's key (and A's user) still have theirs.
        assert (await c.get("/v1/agents", headers=b.key_headers())).status_code == 200
        assert (await c.get("/v1/agents", headers=a.jwt_headers())).status_code == 200


async def test_cors_preflight(db_url: str, world: dict[str, Tenant], tmp_path: Path) -> None:
    async with client(db_url, tmp_path, cors_origins=[ORIGIN]) as c:
        pre = {
            "Origin": ORIGIN,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type",
        }
        ok = await c.options("/v1/contacts", headers=pre)
        assert ok.status_code == 200
        assert ok.headers["access-control-allow-origin"] == ORIGIN
        assert "POST" in ok.headers["access-control-allow-methods"]
        assert "authorization" in ok.headers["access-control-allow-headers"].lower()
        refused = await c.options("/v1/contacts", headers={**pre, "Origin": "https://evil.test"})
        assert refused.status_code == 400
        assert "access-control-allow-origin" not in refused.headers
        simple = await c.get("/v1/contacts", headers={**world["A"].key_headers(), "Origin": ORIGIN})
        assert simple.status_code == 200 and simple.headers["access-control-allow-origin"] == ORIGIN


async def test_openapi_and_docs(api: httpx.AsyncClient) -> None:
    r = await api.get("/openapi.json")
    assert r.status_code == 200
    doc = r.json()
    expected = {
        "/v1/contacts": {"get", "post"},
        "/v1/contacts/{contact_id}": {"get", "patch", "delete"},
        "/v1/contacts/import": {"post"},
        "/v1/calls": {"get"},
        "/v1/calls/{call_id}": {"get"},
        "/v1/calls/{call_id}/transcript": {"get"},
        "/v1/calls/{call_id}/analysis": {"get"},
        "/v1/api-keys": {"get", "post"},
        "/v1/api-keys/{key_id}": {"delete"},
    }
    for path, methods in expected.items():
        assert methods <= set(doc["paths"][path]), path
        for m in methods:
            op = doc["paths"][path][m]
            assert op["security"] == [{"HTTPBearer": []}], (path, m)
            # Errors are documented with the body really sent, FastAPI's 422 replaced.
            for code in ("401", "422", "default"):
                schema = op["responses"][code]["content"]["application/json"]["schema"]
                assert schema == {"$ref": "#/components/schemas/ErrorBody"}, (path, m, code)
    upload = doc["paths"]["/v1/contacts/import"]["post"]["requestBody"]["content"]
    assert "multipart/form-data" in upload
    docs = await api.get("/docs")
    assert docs.status_code == 200 and "swagger-ui" in docs.text.lower()


async def test_health_probes(api: httpx.AsyncClient) -> None:
    assert (await api.get("/healthz")).json() == {"status": "ok"}
    ready = await api.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["status"] == "ready" and ready.json()["schema_version"]


async def test_nul_characters_are_422_not_500(
    api: httpx.AsyncClient, world: dict[str, Tenant]
) -> None:
    """Found by fuzzing: Postgres refuses NUL in text/jsonb. Routes without an edge check
    (agents here) get the generic 422 from the error handlers; contacts refuse it first."""
    h = world["A"].key_headers()
    agent = {"name": "*", "system_prompt": "\u0000"}
    assert_error_shape(await api.post("/v1/agents", json=agent, headers=h), 422, "validation_error")
    put = await api.put(f"/v1/agents/{world['A'].org.rows['agents']}", json=agent, headers=h)
    assert_error_shape(put, 422, "validation_error")
    assert "NUL" in put.json()["error"]["message"]
    contact = await api.post(
        "/v1/contacts", json={"phone": "+14155550123", "name": "\u0000"}, headers=h
    )
    assert_error_shape(contact, 422, "validation_error")
    q = await api.get("/v1/contacts", params={"q": "a\u0000"}, headers=h)
    assert_error_shape(q, 422, "validation_error")
