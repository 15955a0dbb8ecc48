"""Issue 10, findings 1 and 2: a config never reads the server's environment or its keys.

Attacks through the real API and Postgres: an environment canary (standing in for
SUPABASE_JWT_SECRET, DATABASE_URL, LIVEKIT_API_SECRET) never reaches a listener the test opens,
whatever a stored config says; an agent's own llm.base_url never receives the server's
OPENAI_API_KEY but does receive the organization's own secret; the secrets API is write-only,
per organization, for admins, and encrypted at rest.
"""

from __future__ import annotations

import base64
import json
import os
import threading
import uuid
from collections.abc import AsyncIterator, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import asyncpg
import httpx
import pytest
import pytest_asyncio
from loguru import logger

from parley import secrets
from parley.settings import Settings
from tests.api.conftest import (
    Tenant,
    api,
    conn,
    db_url,
    migrated_template,
    pg_server,
    user_token,
    world,
)
from tests.fakes import FakeCloud, Rule, Script, ToolCallReply

__all__ = ["api", "conn", "db_url", "migrated_template", "pg_server", "world"]

CANARY = "canary-" + uuid.uuid4().hex
BASE = {"name": "Attacker", "system_prompt": "Use your tools."}


class _Listener(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.seen: list[dict[str, str]] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/hook"


class _Handler(BaseHTTPRequestHandler):
    server: _Listener

    def log_message(self, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(length).decode()
        self.server.seen.append({**dict(self.headers.items()), "_body": body})
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", "11")
        self.end_headers()
        self.wfile.write(b'{"ok": true}')


@pytest.fixture
def listener() -> Iterator[_Listener]:
    server = _Listener()
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture(autouse=True)
def canary(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("CANARY", "SUPABASE_JWT_SECRET", "DATABASE_URL"):
        monkeypatch.setenv(name, CANARY)


@pytest_asyncio.fixture
async def cloud(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[FakeCloud]:
    """The operator's LLM (OPENAI_BASE_URL), scripted to call the tool."""
    script = Script(rules=[Rule("call it", ToolCallReply("hook", {"q": "x"}))], default="Done.")
    async with FakeCloud(script) as started:
        monkeypatch.setenv("OPENAI_BASE_URL", started.openai_base_url)
        yield started


def _tool(url: str, header: str) -> dict[str, Any]:
    return {
        "type": "http",
        "name": "hook",
        "description": "Send it",
        "url": url,
        "headers": {"Authorization": header, "X-Other": "plain"},
        "parameters": {"type": "object", "properties": {"q": {"type": "string"}}},
    }


@pytest.mark.parametrize("ref", ["${CANARY}", "${SUPABASE_JWT_SECRET}", "${env.CANARY}"])
async def test_configs_that_read_the_environment_are_refused(
    ref: str, listener: _Listener, api: httpx.AsyncClient, world: dict[str, Tenant]
) -> None:
    cfg = {**BASE, "tools": [_tool(listener.url, f"Bearer {ref}")]}
    r = await api.post("/v1/agents", json=cfg, headers=world["A"].key_headers())
    assert r.status_code == 422, r.text
    assert "secrets." in r.text and CANARY not in r.text


async def test_env_reference_stored_before_is_refused_at_run_time(
    cloud: FakeCloud,
    listener: _Listener,
    api: httpx.AsyncClient,
    world: dict[str, Tenant],
    conn: asyncpg.Connection,
) -> None:
    cfg = {**BASE, "llm": {"provider": "openai", "model": "m"}}
    cfg["tools"] = [_tool(listener.url, "Bearer ${env.CANARY}")]
    agent_id = await conn.fetchval(
        "insert into public.agents (org_id, config) values ($1, $2) returning id",
        world["A"].org.id,
        json.dumps(cfg),
    )
    r = await api.post(
        f"/v1/agents/{agent_id}/chat", json={"message": "call it"}, headers=world["A"].key_headers()
    )
    assert r.status_code == 422 and "environment" in r.json()["error"]["message"], r.text
    assert listener.seen == []


async def test_tool_headers_carry_the_orgs_secret_never_the_environment(
    cloud: FakeCloud, listener: _Listener, api: httpx.AsyncClient, world: dict[str, Tenant]
) -> None:
    h = world["A"].key_headers()
    put = await api.put("/v1/secrets/HOOK_TOKEN", json={"value": "org-a-token"}, headers=h)
    assert put.status_code == 200, put.text
    cfg = {**BASE, "llm": {"provider": "openai", "model": "m"}}
    cfg["tools"] = [_tool(listener.url, "Bearer ${secrets.HOOK_TOKEN}")]
    saved = await api.post("/v1/agents", json=cfg, headers=h)
    assert saved.status_code == 201, saved.text
    r = await api.post(
        f"/v1/agents/{saved.json()['id']}/chat", json={"message": "call it"}, headers=h
    )
    assert r.status_code == 200, r.text
    (hit,) = listener.seen
    assert hit["Authorization"] == "Bearer org-a-token"
    assert CANARY not in json.dumps(listener.seen)
    # Organization B's agent with the same reference does not get A's secret: the tool is
    # not sent at all and the LLM is told why.
    hb = world["B"].key_headers()
    saved_b = await api.post("/v1/agents", json=cfg, headers=hb)
    rb = await api.post(
        f"/v1/agents/{saved_b.json()['id']}/chat", json={"message": "call it"}, headers=hb
    )
    assert rb.status_code == 200, rb.text
    assert len(listener.seen) == 1
    tool_result = json.loads(cloud.requests[-1]["messages"][-1]["content"])
    assert "secret HOOK_TOKEN is not set" in tool_result["error"]


@pytest.mark.parametrize("own_key", [False, True])
async def test_agent_base_url_never_gets_the_server_key(
    own_key: bool, api: httpx.AsyncClient, world: dict[str, Tenant]
) -> None:
    # The API's own key is "test-key". Without its own key, the agent's server would answer
    # only if it were handed the server's key (a leak); with one, only to the tenant's key.
    accepts = "tenant-key" if own_key else "test-key"
    async with FakeCloud(Script(default="Hello from yours."), api_key=accepts) as tenant:
        h = world["A"].key_headers()
        await api.put("/v1/secrets/MY_LLM_KEY", json={"value": "tenant-key"}, headers=h)
        llm: dict[str, Any] = {"provider": "openai", "model": "m"}
        llm["base_url"] = tenant.openai_base_url
        if own_key:
            llm["api_key"] = "${secrets.MY_LLM_KEY}"
        saved = await api.post("/v1/agents", json={**BASE, "llm": llm}, headers=h)
        assert saved.status_code == 201, saved.text
        r = await api.post(
            f"/v1/agents/{saved.json()['id']}/chat", json={"message": "hi"}, headers=h
        )
    if own_key:
        assert r.status_code == 200 and r.json()["reply"] == "Hello from yours.", r.text
    else:
        # The agent's server got a placeholder, not the server's "test-key": refused.
        assert r.status_code == 502, r.text
        assert "test-key" not in r.text


async def test_literal_keys_are_refused(api: httpx.AsyncClient, world: dict[str, Tenant]) -> None:
    llm = {"provider": "openai", "model": "m", "base_url": "https://llm.example.com/v1"}
    llm["api_key"] = "sk-live-123456"
    r = await api.post("/v1/agents", json={**BASE, "llm": llm}, headers=world["A"].key_headers())
    assert r.status_code == 422 and "secrets" in r.text


async def test_secrets_api_is_write_only_per_org_and_for_admins(
    api: httpx.AsyncClient, world: dict[str, Tenant], conn: asyncpg.Connection
) -> None:
    logged: list[str] = []
    sink = logger.add(lambda m: logged.append(str(m)), level="DEBUG")
    value = "v-" + uuid.uuid4().hex
    h = world["A"].key_headers()
    try:
        r = await api.put("/v1/secrets/CRM_TOKEN", json={"value": value}, headers=h)
        listed = await api.get("/v1/secrets", headers=h)
        other = await api.get("/v1/secrets", headers=world["B"].key_headers())
        bad = await api.put("/v1/secrets/crm-token", json={"value": "x"}, headers=h)
        member = {"Authorization": f"Bearer {user_token(world['A'].org.member)}"}  # type: ignore[arg-type]
        as_member = await api.put("/v1/secrets/CRM_TOKEN", json={"value": "x"}, headers=member)
        owner = await api.get("/v1/secrets", headers=world["A"].jwt_headers())
    finally:
        logger.remove(sink)
    assert r.status_code == 200 and value not in r.text
    assert [i["name"] for i in listed.json()["items"]] == ["CRM_TOKEN"] and value not in listed.text
    assert other.json()["items"] == []
    assert bad.status_code == 422
    assert as_member.status_code == 403
    assert owner.status_code == 200 and value not in owner.text
    assert not any(value in line for line in logged)
    row = await conn.fetchrow("select ciphertext, nonce from private.org_secrets")
    assert value.encode() not in bytes(row["ciphertext"])
    # Moving a ciphertext to another organization does not decrypt there.
    key = base64.b64encode(os.urandom(32)).decode()
    ring = secrets.key_ring(Settings(secrets_key=key))  # type: ignore[call-arg]
    data, nonce, key_id = ring.encrypt(world["A"].org.id, "X", "v")
    with pytest.raises(secrets.SecretError):
        ring.decrypt(world["B"].org.id, "X", data, nonce, key_id)
    deleted = await api.delete("/v1/secrets/CRM_TOKEN", headers=h)
    again = await api.delete("/v1/secrets/CRM_TOKEN", headers=h)
    assert (deleted.status_code, again.status_code) == (204, 404)


async def test_rotation_re_encrypts_under_the_new_key(
    conn: asyncpg.Connection, world: dict[str, Tenant]
) -> None:
    old = base64.b64encode(os.urandom(32)).decode()
    new = base64.b64encode(os.urandom(32)).decode()
    org = world["A"].org.id
    ring_old = secrets.key_ring(Settings(secrets_key=old))  # type: ignore[call-arg]
    await secrets.put(conn, ring_old, org, "A_KEY", "value-1")
    ring_new = secrets.key_ring(Settings(secrets_key=new, secrets_old_keys=old))  # type: ignore[call-arg]
    assert await secrets.load(conn, ring_new, org) == {"A_KEY": "value-1"}
    assert await secrets.rotate(conn, ring_new) == 1
    only_new = secrets.key_ring(Settings(secrets_key=new))  # type: ignore[call-arg]
    assert await secrets.load(conn, only_new, org) == {"A_KEY": "value-1"}
    assert await secrets.load(conn, ring_old, org) == {}  # the old key alone no longer reads it
