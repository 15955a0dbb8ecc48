"""API keys: the token is shown once and works, lists never show secrets, revoked keys stop
working at once, and only owners/admins (or a key with the admin scope) manage keys."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from api.auth import from_api_key
from api.cli import _find_org, keys_app
from api.keys import parse_prefix
from parley.db import connect
from parley.db.testing import run_sync
from parley.errors import ParleyError
from tests.api.conftest import Tenant, user_token


async def test_create_use_list_revoke(api: httpx.AsyncClient, world: dict[str, Tenant]) -> None:
    a = world["A"]
    made = await api.post("/v1/api-keys", json={"name": "dialer"}, headers=a.jwt_headers())
    assert made.status_code == 201, made.text
    key = made.json()
    token = key["token"]
    assert token.startswith("pk_") and parse_prefix(token) == key["prefix"]
    assert key["revoked_at"] is None and key["last_used_at"] is None

    mine = {"Authorization": f"Bearer {token}"}
    assert (await api.get("/v1/agents", headers=mine)).status_code == 200
    listed = await api.get("/v1/api-keys", headers=a.jwt_headers())
    assert listed.status_code == 200
    rows = {k["id"]: k for k in listed.json()["items"]}
    assert rows[key["id"]]["last_used_at"] is not None  # it was just used
    # Never the secret nor its hash, for any key.
    assert token not in listed.text and "hash" not in listed.text
    assert all(set(k) == set(key) - {"token"} for k in rows.values())

    assert (
        await api.delete(f"/v1/api-keys/{key['id']}", headers=a.jwt_headers())
    ).status_code == 204
    refused = await api.get("/v1/agents", headers=mine)
    assert refused.status_code == 401 and refused.json()["error"]["code"] == "unauthorized"
    # Revoking again is a no-op; the revoked key is listed only when asked for.
    assert (
        await api.delete(f"/v1/api-keys/{key['id']}", headers=a.jwt_headers())
    ).status_code == 204
    active = (await api.get("/v1/api-keys", headers=a.jwt_headers())).json()["items"]
    assert key["id"] not in {k["id"] for k in active}
    everything = (
        await api.get("/v1/api-keys", params={"include_revoked": True}, headers=a.jwt_headers())
    ).json()["items"]
    revoked = next(k for k in everything if k["id"] == key["id"])
    assert revoked["revoked_at"] is not None


async def test_a_key_can_revoke_itself(api: httpx.AsyncClient, world: dict[str, Tenant]) -> None:
    a = world["A"]
    body = {"name": "tmp", "scopes": ["admin"]}
    key = (await api.post("/v1/api-keys", json=body, headers=a.jwt_headers())).json()
    mine = {"Authorization": f"Bearer {key['token']}"}
    assert (await api.delete(f"/v1/api-keys/{key['id']}", headers=mine)).status_code == 204
    assert (await api.get("/v1/api-keys", headers=mine)).status_code == 401


async def test_members_cannot_manage_keys(api: httpx.AsyncClient, world: dict[str, Tenant]) -> None:
    a = world["A"]
    assert a.org.member is not None
    member = {"Authorization": f"Bearer {user_token(a.org.member)}"}
    # A plain member reads agents, but keys are for owners and admins only.
    assert (await api.get("/v1/agents", headers=member)).status_code == 200
    for r in (
        await api.post("/v1/api-keys", json={"name": "x"}, headers=member),
        await api.get("/v1/api-keys", headers=member),
        await api.delete(f"/v1/api-keys/{a.org.rows['api_keys']}", headers=member),
    ):
        assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden"


async def test_validation_and_unknown_key(api: httpx.AsyncClient, world: dict[str, Tenant]) -> None:
    h = world["A"].jwt_headers()
    for body in ({}, {"name": ""}, {"name": "x" * 201}, {"name": "a\x00b"}):
        r = await api.post("/v1/api-keys", json=body, headers=h)
        assert r.status_code == 422 and r.json()["error"]["details"], body
    missing = await api.delete("/v1/api-keys/00000000-0000-0000-0000-000000000000", headers=h)
    assert missing.status_code == 404 and missing.json()["error"]["message"] == "API key not found"


def test_cli_creates_a_working_key(
    db_url: str, world: dict[str, Tenant], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`parley keys create` against a given DATABASE_URL: by name or id, never creating orgs."""
    monkeypatch.setenv("DATABASE_URL", db_url)
    runner = CliRunner()
    org = world["A"].org
    for ref in ("Org A", str(org.id)):
        done = runner.invoke(keys_app, ["create", "--org", ref, "--name", "ops"])
        assert done.exit_code == 0, done.output
        token = done.stdout.strip()
        assert token.startswith("pk_") and "\n" not in token

        async def owner_of(token: str = token) -> Any:
            conn = await connect(db_url)
            try:
                who = await from_api_key(conn, token)
                return who.org_id
            finally:
                await conn.close()

        assert run_sync(owner_of()) == org.id
    missing = runner.invoke(keys_app, ["create", "--org", "Nope Inc"])
    assert missing.exit_code == 2 and "no organization named 'Nope Inc'" in missing.output


async def test_cli_org_lookup_creates_only_when_allowed(db_url: str) -> None:
    conn = await connect(db_url)
    try:
        with pytest.raises(ParleyError, match="created here only in the embedded"):
            await _find_org(conn, "Fresh", may_create=False)
        made, created = await _find_org(conn, "Fresh", may_create=True)
        assert created and await _find_org(conn, "Fresh", may_create=True) == (made, False)
        await conn.execute("insert into public.organizations (name) values ('Fresh')")
        with pytest.raises(ParleyError, match="several organizations"):
            await _find_org(conn, "Fresh", may_create=True)
        with pytest.raises(ParleyError, match="no organization has the id"):
            await _find_org(conn, "00000000-0000-0000-0000-000000000000", may_create=True)
    finally:
        await conn.close()
