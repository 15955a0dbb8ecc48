"""Tenancy matrix: every endpoint that takes an object id, called by organization A (with an
API key and with a user JWT) on organization B's object, answers 404 ``not_found`` from the
handler (not 403, not 500, not a missing route) and leaves B's row as it was. Lists never
show the other organization's rows.

To cover a new endpoint, add a line to ENDPOINTS: its path names the ids to use, each a key
of the world's ``org.rows`` or of EXTRA_IDS (a resolver for ids the world does not list).
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import asyncpg
import httpx
import pytest

from parley.config import load_agent
from tests.api.conftest import Tenant
from tests.db.conftest import Org

DENTAL = load_agent("dental").model_dump(mode="json")


@dataclass(frozen=True)
class Endpoint:
    method: str
    # Placeholders name the ids to put in: keys of org.rows (or of EXTRA_IDS).
    path: str
    target: str  # the placeholder naming the object acted on (checked untouched)
    table: str  # where that object lives
    body: dict[str, Any] | None = None
    # Also call it on the caller's own objects and expect no 404 (proves the route exists).
    # Off where that would run a model: chat (an LLM), search and ingestion (embeddings).
    control: bool = True

    def __str__(self) -> str:
        return f"{self.method} {self.path}"


KB = "/v1/knowledge-bases/{knowledge_bases}"
DOC = KB + "/documents/{documents}"
ENDPOINTS = [
    Endpoint("GET", "/v1/agents/{agents}", "agents", "agents"),
    Endpoint("PUT", "/v1/agents/{agents}", "agents", "agents", body=DENTAL),
    Endpoint("POST", "/v1/agents/{agents}/chat", "agents", "agents", {"message": "hi"}, False),
    Endpoint("DELETE", "/v1/agents/{agents}", "agents", "agents"),
    Endpoint("GET", "/v1/contacts/{contacts}", "contacts", "contacts"),
    Endpoint("PATCH", "/v1/contacts/{contacts}", "contacts", "contacts", {"name": "Mallory"}),
    Endpoint("DELETE", "/v1/contacts/{contacts}", "contacts", "contacts"),
    Endpoint("GET", "/v1/calls/{calls}", "calls", "calls"),
    Endpoint("GET", "/v1/calls/{calls}/transcript", "calls", "calls"),
    Endpoint("GET", "/v1/calls/{analysed_call}/analysis", "analysed_call", "calls"),
    Endpoint("DELETE", "/v1/api-keys/{api_keys}", "api_keys", "api_keys"),
    Endpoint("GET", KB, "knowledge_bases", "knowledge_bases"),
    Endpoint("PATCH", KB, "knowledge_bases", "knowledge_bases", {"name": "Mallory"}),
    Endpoint("DELETE", KB, "knowledge_bases", "knowledge_bases"),
    Endpoint("POST", KB + "/documents", "knowledge_bases", "knowledge_bases", {"text": "x"}, False),
    Endpoint("GET", KB + "/documents", "knowledge_bases", "knowledge_bases"),
    Endpoint("POST", KB + "/search", "knowledge_bases", "knowledge_bases", {"query": "x"}, False),
    Endpoint("GET", DOC, "documents", "documents"),
    Endpoint("DELETE", DOC, "documents", "documents"),
]

LISTS = {  # list endpoint -> the org.rows key of an object it must (not) show
    "/v1/agents": "agents",
    "/v1/contacts": "contacts",
    "/v1/calls": "calls",
    "/v1/api-keys": "api_keys",
    "/v1/knowledge-bases": "knowledge_bases",
}


async def _analysed_call(conn: asyncpg.Connection, org: Org) -> UUID:
    call_id: UUID = await conn.fetchval(
        "select call_id from public.call_analysis where id = $1", org.rows["call_analysis"]
    )
    return call_id


EXTRA_IDS: dict[str, Callable[[asyncpg.Connection, Org], Awaitable[UUID]]] = {
    "analysed_call": _analysed_call,
}


async def object_id(conn: asyncpg.Connection, org: Org, ref: str) -> UUID:
    return org.rows[ref] if ref in org.rows else await EXTRA_IDS[ref](conn, org)


async def url(conn: asyncpg.Connection, org: Org, path: str) -> str:
    names = re.findall(r"{(\w+)}", path)
    return path.format(**{n: await object_id(conn, org, n) for n in names})


async def snapshot(conn: asyncpg.Connection, table: str, id_: UUID) -> str | None:
    row: str | None = await conn.fetchval(
        f"select to_jsonb(t)::text from public.{table} t where id = $1", id_
    )
    return row


def headers(tenant: Tenant, caller: str) -> dict[str, str]:
    return tenant.key_headers() if caller == "key" else tenant.jwt_headers()


@pytest.mark.parametrize("caller", ["key", "jwt"])
@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=str)
async def test_other_orgs_object_is_404(
    api: httpx.AsyncClient,
    world: dict[str, Tenant],
    conn: asyncpg.Connection,
    endpoint: Endpoint,
    caller: str,
) -> None:
    a, b = world["A"], world["B"]
    theirs = await object_id(conn, b.org, endpoint.target)
    before = await snapshot(conn, endpoint.table, theirs)
    assert before is not None
    r = await api.request(
        endpoint.method,
        await url(conn, b.org, endpoint.path),
        json=endpoint.body,
        headers=headers(a, caller),
    )
    assert r.status_code == 404, r.text
    err = r.json()["error"]
    assert err["code"] == "not_found" and err["message"] != "Not Found", err  # the handler's
    assert await snapshot(conn, endpoint.table, theirs) == before

    if endpoint.control:
        own = await api.request(
            endpoint.method,
            await url(conn, a.org, endpoint.path),
            json=endpoint.body,
            headers=headers(a, caller),
        )
        assert own.status_code in (200, 204), own.text


@pytest.mark.parametrize("caller", ["key", "jwt"])
async def test_lists_show_only_own_rows(
    api: httpx.AsyncClient, world: dict[str, Tenant], caller: str
) -> None:
    a, b = world["A"], world["B"]
    h = headers(a, caller)
    for path, ref in LISTS.items():
        r = await api.get(path, params={"limit": 100}, headers=h)
        assert r.status_code == 200, (path, r.text)
        ids = {x["id"] for x in r.json()["items"]}
        assert str(a.org.rows[ref]) in ids, path
        assert str(b.org.rows[ref]) not in ids, path
    # Filtering on the other organization's ids finds nothing (and is not an error).
    for param, ref in (("agent_id", "agents"), ("contact_id", "contacts")):
        r = await api.get("/v1/calls", params={param: str(b.org.rows[ref])}, headers=h)
        assert r.status_code == 200 and r.json()["items"] == []


async def test_jwt_cannot_pick_another_org(
    api: httpx.AsyncClient, world: dict[str, Tenant]
) -> None:
    a, b = world["A"], world["B"]
    r = await api.get("/v1/contacts", headers={**a.jwt_headers(), "X-Parley-Org": str(b.org.id)})
    assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden"
