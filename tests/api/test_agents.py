"""Agents API: CRUD with the shared config schema, validation errors in the one error shape,
pagination, the other organization's agents are 404, and the text chat endpoint."""

from __future__ import annotations

import httpx

from parley.config import load_agent
from tests.api.conftest import Tenant
from tests.fakes import FakeCloud, Rule, Script

DENTAL = load_agent("dental").model_dump(mode="json")


async def test_crud_round_trip(api: httpx.AsyncClient, world: dict[str, Tenant]) -> None:
    a = world["A"]
    made = await api.post("/v1/agents", json=DENTAL, headers=a.key_headers())
    assert made.status_code == 201, made.text
    agent = made.json()
    assert agent["config"] == DENTAL
    got = await api.get(f"/v1/agents/{agent['id']}", headers=a.jwt_headers())
    assert got.status_code == 200 and got.json()["config"]["name"] == DENTAL["name"]
    changed = {**DENTAL, "greeting": "Hi!"}
    put = await api.put(f"/v1/agents/{agent['id']}", json=changed, headers=a.key_headers())
    assert put.json()["config"]["greeting"] == "Hi!"
    assert (
        await api.delete(f"/v1/agents/{agent['id']}", headers=a.key_headers())
    ).status_code == 204
    gone = await api.get(f"/v1/agents/{agent['id']}", headers=a.key_headers())
    assert gone.status_code == 404 and gone.json()["error"]["code"] == "not_found"


async def test_invalid_config_names_the_field(
    api: httpx.AsyncClient, world: dict[str, Tenant]
) -> None:
    bad = {**DENTAL, "turns": {"vad_stop_secs": 99}}
    r = await api.post("/v1/agents", json=bad, headers=world["A"].key_headers())
    assert r.status_code == 422
    err = r.json()["error"]
    assert err["code"] == "validation_error" and err["request_id"]
    assert any(d["field"].endswith("turns.vad_stop_secs") for d in err["details"])


async def test_other_org_is_404_and_lists_are_scoped(
    api: httpx.AsyncClient, world: dict[str, Tenant]
) -> None:
    a, b = world["A"], world["B"]
    b_agent = b.org.rows["agents"]
    for headers in (a.key_headers(), a.jwt_headers()):
        assert (await api.get(f"/v1/agents/{b_agent}", headers=headers)).status_code == 404
        assert (
            await api.put(f"/v1/agents/{b_agent}", json=DENTAL, headers=headers)
        ).status_code == 404
        assert (await api.delete(f"/v1/agents/{b_agent}", headers=headers)).status_code == 404
        ids = {x["id"] for x in (await api.get("/v1/agents", headers=headers)).json()["items"]}
        assert str(b_agent) not in ids and str(a.org.rows["agents"]) in ids


async def test_cursor_pagination(api: httpx.AsyncClient, world: dict[str, Tenant]) -> None:
    h = world["A"].key_headers()
    for i in range(5):
        await api.post("/v1/agents", json={**DENTAL, "name": f"Agent {i}"}, headers=h)
    seen, cursor = [], None
    while True:
        page = (
            await api.get(
                "/v1/agents",
                params={"limit": 2, **({"cursor": cursor} if cursor else {})},
                headers=h,
            )
        ).json()
        seen += [x["id"] for x in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert len(seen) == len(set(seen)) == 6  # 5 new + the world's one
    bad = await api.get("/v1/agents", params={"cursor": "garbage"}, headers=h)
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "bad_cursor"


async def test_auth_failures(api: httpx.AsyncClient, world: dict[str, Tenant]) -> None:
    assert (await api.get("/v1/agents")).json()["error"]["code"] == "unauthorized"
    for token in ("pk_deadbeef_nope", "not-a-jwt", world["A"].jwt + "x"):
        r = await api.get("/v1/agents", headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 401, token


async def test_chat_runs_the_agents_llm(api: httpx.AsyncClient, world: dict[str, Tenant]) -> None:
    with FakeCloud(Script(rules=[Rule("hours", "We open at nine.")]), api_key=None) as cloud:
        cfg = {
            **DENTAL,
            "tools": [],
            "llm": {"provider": "openai", "base_url": cloud.openai_base_url, "model": "m"},
        }
        h = world["A"].key_headers()
        agent = (await api.post("/v1/agents", json=cfg, headers=h)).json()
        r = await api.post(
            f"/v1/agents/{agent['id']}/chat", json={"message": "Your hours?"}, headers=h
        )
        assert r.status_code == 200, r.text
        want = {"reply": "We open at nine.", "tool_calls": [], "knowledge_chunk_ids": []}
        assert r.json() == want
        assert cloud.requests[0]["messages"][0]["content"].startswith("You are the receptionist")


async def test_chat_reports_llm_failures(api: httpx.AsyncClient, world: dict[str, Tenant]) -> None:
    with FakeCloud(Script(), openai_api_key="another-key") as cloud:
        cfg = {
            **DENTAL,
            "tools": [],
            "llm": {"provider": "openai", "base_url": cloud.openai_base_url, "model": "m"},
        }
        h = world["A"].key_headers()
        agent = (await api.post("/v1/agents", json=cfg, headers=h)).json()
        r = await api.post(f"/v1/agents/{agent['id']}/chat", json={"message": "Hi"}, headers=h)
    assert r.status_code == 502 and r.json()["error"]["code"] == "llm_failed"
    assert "401" in r.json()["error"]["message"] and "test-key" not in r.text
