"""Issue 10, finding 5: keys with scopes; publishable browser keys do only what a page needs.

Through the real API and Postgres: a publishable key gets 403 on every route but listing its
agents and starting sessions with them (every route of the app is tried, so new routes are
covered); its agent list is only its agents; wrong origins and expired keys are refused; key
management needs the admin scope and a key can't grant more than its creator holds.
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx

from api.keys import new_key
from tests.api.conftest import Tenant, api, conn, db_url, migrated_template, pg_server, world

__all__ = ["api", "conn", "db_url", "migrated_template", "pg_server", "world"]

AGENT = {"name": "Tutor", "system_prompt": "Teach."}


async def _key(conn: asyncpg.Connection, org_id: uuid.UUID, **cols: Any) -> str:
    kind = cols.get("kind", "secret")
    key = new_key(kind)
    names = ["org_id", "name", "prefix", "key_hash", *cols]
    values = [org_id, "t", key.prefix, key.hash, *cols.values()]
    params = ", ".join(f"${i}" for i in range(1, len(values) + 1))
    await conn.execute(
        f"insert into public.api_keys ({', '.join(names)}) values ({params})", *values
    )
    return key.token


def _h(token: str, **extra: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", **extra}


async def test_publishable_key_is_refused_everywhere_else(
    api: httpx.AsyncClient, world: dict[str, Tenant], conn: asyncpg.Connection
) -> None:
    a = world["A"]
    mine = (await api.post("/v1/agents", json=AGENT, headers=a.key_headers())).json()["id"]
    other = (await api.post("/v1/agents", json=AGENT, headers=a.key_headers())).json()["id"]
    pub = await _key(conn, a.org.id, kind="publishable", scopes=[], agent_ids=[uuid.UUID(mine)])
    listed = await api.get("/v1/agents", headers=_h(pub))
    assert listed.status_code == 200, listed.text
    assert [i["id"] for i in listed.json()["items"]] == [mine]

    app = api._transport.app  # type: ignore[attr-defined]
    allowed = {("GET", "/v1/agents"), ("POST", "/v1/sessions/web")}
    allowed.add(("POST", "/v1/sessions/web/{call_id}/offer"))
    tried = 0
    for template, ops in app.openapi()["paths"].items():
        if not template.startswith("/v1/") or template == "/v1/livekit/webhook":
            continue  # the webhook is signed by LiveKit, not a bearer token
        path = re.sub(r"\{[^}]+\}", str(uuid.uuid4()), template)
        for method in ops:
            if (method.upper(), template) in allowed:
                continue
            r = await api.request(method.upper(), path, headers=_h(pub), json={})
            assert r.status_code == 403, (method, template, r.status_code, r.text)
            assert r.json()["error"]["code"] == "forbidden"
            tried += 1
    assert tried >= 25

    # A session with an agent outside its list; a page on a foreign origin.
    r = await api.post("/v1/sessions/web", json={"agent_id": other}, headers=_h(pub))
    assert r.status_code == 403, r.text
    pinned = await _key(
        conn,
        a.org.id,
        kind="publishable",
        scopes=[],
        agent_ids=[uuid.UUID(mine)],
        allowed_origins=["https://tutor.example.com"],
    )
    bad = await api.get("/v1/agents", headers=_h(pinned, Origin="https://evil.example"))
    good = await api.get("/v1/agents", headers=_h(pinned, Origin="https://tutor.example.com"))
    assert (bad.status_code, good.status_code) == (403, 200)


async def test_expired_key_is_refused(
    api: httpx.AsyncClient, world: dict[str, Tenant], conn: asyncpg.Connection
) -> None:
    past = datetime.now(UTC) - timedelta(minutes=1)
    old = await _key(conn, world["A"].org.id, expires_at=past)
    r = await api.get("/v1/agents", headers=_h(old))
    assert r.status_code == 401 and "expired" in r.json()["error"]["message"]


async def test_scopes_are_enforced_and_key_management_needs_admin(
    api: httpx.AsyncClient, world: dict[str, Tenant], conn: asyncpg.Connection
) -> None:
    org = world["A"].org.id
    agents_only = await _key(conn, org, scopes=["agents"])
    assert (await api.get("/v1/agents", headers=_h(agents_only))).status_code == 200
    for path in ("/v1/contacts", "/v1/calls", "/v1/knowledge-bases", "/v1/api-keys"):
        r = await api.get(path, headers=_h(agent_only := agents_only))
        assert r.status_code == 403 and "scope" in r.text, (path, r.text)
    # A key with every scope but admin (what keys made before scopes existed got).
    plain = _h(await _key(conn, org))
    made = await api.post("/v1/api-keys", json={"name": "x"}, headers=plain)
    assert made.status_code == 403
    victim = await conn.fetchval("select id from public.api_keys where org_id = $1", org)
    revoked = await api.delete(f"/v1/api-keys/{victim}", headers=plain)
    assert revoked.status_code == 403
    admin = await _key(conn, org, scopes=["agents", "admin"])
    made = await api.post(
        "/v1/api-keys", json={"name": "x", "scopes": ["agents"]}, headers=_h(admin)
    )
    assert made.status_code == 201, made.text
    assert made.json()["token"].startswith("pk_") and made.json()["scopes"] == ["agents"]
    # No escalation: the admin key lacks "calls", so it can't grant it.
    more = await api.post(
        "/v1/api-keys", json={"name": "y", "scopes": ["calls"]}, headers=_h(admin)
    )
    assert more.status_code == 403, more.text
    # The owner (JWT) makes a publishable key for one agent.
    agent = (await api.post("/v1/agents", json=AGENT, headers=_h(agent_only))).json()["id"]
    pub = await api.post(
        "/v1/api-keys",
        json={"name": "page", "kind": "publishable", "agent_ids": [agent]},
        headers=world["A"].jwt_headers(),
    )
    assert pub.status_code == 201, pub.text
    assert pub.json()["token"].startswith("pub_") and pub.json()["agent_ids"] == [agent]
