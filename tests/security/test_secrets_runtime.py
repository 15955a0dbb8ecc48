"""Issue 10, findings 1 and 2 where stored configs run: the JWT-forging attack, configs stored
before the rules (migrated, refused at load with a 422, never a 500), and every runtime that
loads a stored agent (worker calls, web sessions, ``/chat``) checks it and binds only its own
organization's secrets. Real API, Postgres, and listeners on loopback ports."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from agents.calls import CallRefused, CallStore
from parley.db import create_pool
from parley.db.migrate import load_migrations
from parley.settings import Settings
from tests.api.conftest import (
    JWT_SECRET,
    Tenant,
    api,
    conn,
    db_url,
    migrated_template,
    pg_server,
    user_token,
    world,
)
from tests.fakes import FakeCloud
from tests.security.test_secrets import BASE, _Listener, _tool, cloud, listener

__all__ = ["api", "cloud", "conn", "db_url", "listener", "migrated_template", "pg_server", "world"]

OPENAI = {"provider": "openai", "model": "m"}


async def _insert_agent(conn: asyncpg.Connection, org_id: uuid.UUID, cfg: dict[str, Any]) -> str:
    """A config written straight into the table, as an older version could have stored it."""
    agent_id = await conn.fetchval(
        "insert into public.agents (org_id, config) values ($1, $2) returning id",
        org_id,
        json.dumps(cfg),
    )
    return str(agent_id)


async def _chat(api: httpx.AsyncClient, agent_id: str, h: dict[str, str]) -> httpx.Response:
    r = await api.post(f"/v1/agents/{agent_id}/chat", json={"message": "call it"}, headers=h)
    assert r.status_code != 500, r.text
    return r


async def test_the_jwt_secret_cannot_be_read_to_forge_a_token(
    monkeypatch: pytest.MonkeyPatch,
    cloud: FakeCloud,
    listener: _Listener,
    api: httpx.AsyncClient,
    world: dict[str, Tenant],
    conn: asyncpg.Connection,
) -> None:
    # The server's real signing secret is in its environment, as in a deployment.
    monkeypatch.setenv("SUPABASE_JWT_SECRET", JWT_SECRET)
    a, hb = world["A"], world["B"].key_headers()

    def forged(secret: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {user_token(a.org.owner, secret=secret)}"}

    # What a leak would buy organization B: A's contacts.
    leaked = await api.get("/v1/contacts", headers=forged(JWT_SECRET))
    assert leaked.status_code == 200 and leaked.json()["items"], leaked.text

    own_server = listener.url.removesuffix("/hook") + "/v1"
    env_ref, org_ref = "${env.SUPABASE_JWT_SECRET}", "${secrets.SUPABASE_JWT_SECRET}"
    refused: list[dict[str, Any]] = [
        {"tools": [_tool(listener.url, "${SUPABASE_JWT_SECRET}")]},
        {"tools": [_tool(listener.url, f"Bearer {env_ref}")]},
        {"llm": {**OPENAI, "base_url": own_server, "api_key": env_ref}},
        {"tts": {"provider": "openai", "base_url": own_server, "api_key": env_ref}},
    ]
    for patch in refused:
        r = await api.post("/v1/agents", json={**BASE, **patch}, headers=hb)
        assert r.status_code == 422, r.text
        # Stored anyway (by an older version): refused when run.
        stored = await _insert_agent(conn, world["B"].org.id, {**BASE, "llm": OPENAI, **patch})
        assert (await _chat(api, stored, hb)).status_code == 422
    # Allowed to store, since they name B's own secrets (it has none): they get nothing.
    allowed: list[dict[str, Any]] = [
        {"llm": OPENAI, "tools": [_tool(listener.url, f"Bearer {org_ref}")]},
        {"llm": {**OPENAI, "base_url": own_server, "api_key": org_ref}},
        {"llm": {**OPENAI, "base_url": own_server}},
    ]
    for patch in allowed:
        saved = await api.post("/v1/agents", json={**BASE, **patch}, headers=hb)
        assert saved.status_code == 201, saved.text
        await _chat(api, saved.json()["id"], hb)

    seen = json.dumps(listener.seen)
    assert JWT_SECRET not in seen
    # No key B's servers received signs a token the API accepts (a few tries: failed
    # authentications are rate limited per address).
    keys = {v for hit in listener.seen for k, v in hit.items() if k.lower() == "authorization"}
    assert keys == {"Bearer not-needed"}  # the keyless agent server got the placeholder
    candidates = {k.removeprefix("Bearer ") for k in keys}
    for candidate in sorted(candidates):
        r = await api.get("/v1/contacts", headers=forged(candidate))
        assert r.status_code == 401, (candidate, r.text)


async def test_configs_stored_with_bare_references_migrate_to_secrets(
    cloud: FakeCloud,
    listener: _Listener,
    api: httpx.AsyncClient,
    world: dict[str, Tenant],
    conn: asyncpg.Connection,
) -> None:
    h = world["A"].key_headers()
    upper = _tool(listener.url, "Bearer ${HOOK_TOKEN}")
    lower = _tool(listener.url, "Bearer ${hook_token}")
    prompt = "Quote ${NOT_A_HEADER} as is."
    ids = [
        await _insert_agent(conn, world["A"].org.id, {**BASE, "llm": OPENAI, "tools": [tool]})
        for tool in (upper, lower)
    ]
    other = await _insert_agent(conn, world["A"].org.id, {**BASE, "system_prompt": prompt})
    # Before the migration: a clear 422 naming the agent and the fix, not a 500.
    r = await api.get(f"/v1/agents/{ids[0]}", headers=h)
    assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_config", r.text
    assert f"PUT /v1/agents/{ids[0]}" in r.text and "${secrets.HOOK_TOKEN}" in r.text

    (migration,) = [m for m in load_migrations() if m.version == "20261204000110"]
    for statement in migration.statements():
        await conn.execute(statement)

    got = [(await api.get(f"/v1/agents/{i}", headers=h)).json()["config"] for i in ids]
    headers = [cfg["tools"][0]["headers"]["Authorization"] for cfg in got]
    assert headers == ["Bearer ${secrets.HOOK_TOKEN}", "Bearer ${secrets.hook_token}"]
    kept = (await api.get(f"/v1/agents/{other}", headers=h)).json()["config"]
    assert kept["system_prompt"] == prompt
    # Missing until the organization stores it; then the tool carries the org's value.
    await _chat(api, ids[0], h)
    assert "secret HOOK_TOKEN is not set" in json.dumps(cloud.requests[-1]["messages"])
    await api.put("/v1/secrets/HOOK_TOKEN", json={"value": "org-value"}, headers=h)
    assert (await _chat(api, ids[0], h)).status_code == 200
    assert [hit["Authorization"] for hit in listener.seen] == ["Bearer org-value"]
    await _chat(api, ids[1], h)  # a lower-case name: the LLM is told the stored form
    assert "${secrets.HOOK_TOKEN}" in json.dumps(cloud.requests[-1]["messages"])
    assert len(listener.seen) == 1


async def test_calls_and_web_sessions_check_the_config_and_bind_their_orgs_secrets(
    api: httpx.AsyncClient,
    world: dict[str, Tenant],
    conn: asyncpg.Connection,
    db_url: str,
    tmp_path: Path,
) -> None:
    a, b = world["A"], world["B"]
    for tenant, value in ((a, "a-value"), (b, "b-value")):
        put = await api.put("/v1/secrets/HOOK", json={"value": value}, headers=tenant.key_headers())
        assert put.status_code == 200, put.text
    good = {**BASE, "tools": [_tool("https://example.com/hook", "Bearer ${secrets.HOOK}")]}
    bad = {**BASE, "tools": [_tool("https://example.com/hook", "Bearer ${env.HOOK}")]}
    good_id, bad_id = [await _insert_agent(conn, a.org.id, cfg) for cfg in (good, bad)]

    # Web sessions: a refused config is a 422 before any call row exists.
    before = await conn.fetchval("select count(*) from public.calls")
    r = await api.post("/v1/sessions/web", json={"agent_id": bad_id}, headers=a.key_headers())
    assert r.status_code == 422 and "environment" in r.json()["error"]["message"], r.text
    assert await conn.fetchval("select count(*) from public.calls") == before
    ok = await api.post("/v1/sessions/web", json={"agent_id": good_id}, headers=a.key_headers())
    assert ok.status_code == 201, ok.text

    # The worker's (and P2P's) load: the API's key ring, so it reads what the API stored.
    calls = {}
    for name, agent_id in (("good", good_id), ("bad", bad_id)):
        calls[name] = await conn.fetchval(
            "insert into public.calls (org_id, agent_id, direction, status) "
            "values ($1, $2, 'web', 'created') returning id",
            a.org.id,
            uuid.UUID(agent_id),
        )
    pool = await create_pool(db_url, min_size=1, max_size=2)
    try:
        store = CallStore(pool, Settings(data_dir=tmp_path))  # type: ignore[call-arg]
        loaded = await store.load(calls["good"], a.org.id)
        assert dict(loaded.agent.secrets) == {"HOOK": "a-value"}  # never B's
        assert not loaded.agent.trusted
        with pytest.raises(CallRefused, match="cannot read the server's environment"):
            await store.load(calls["bad"], a.org.id)
    finally:
        await pool.close()
    row = await conn.fetchrow(
        "select status, end_reason from public.calls where id = $1", calls["bad"]
    )
    assert (row["status"], row["end_reason"]) == ("failed", "config_refused")
