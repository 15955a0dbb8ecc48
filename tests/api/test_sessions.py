"""Web sessions: the call row made for a browser call, embedded (peer-to-peer) mode and LiveKit
mode (with no server listening: 503 and a failed call; the token is checked on its own), and
the offer endpoint's refusals. Answering a valid offer opens UDP sockets, so it is tested
inside a network namespace (tests/livekit/test_p2p_e2e.py), never here."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from uuid import UUID, uuid4

import asyncpg
import httpx
import pytest
from livekit import api as lk

from api import livekit
from tests.api.conftest import Tenant
from tests.api.livekit_support import (
    KEY,
    PUBLIC_URL,
    SECRET,
    client,
    insert_call,
    livekit_settings,
)

# An offer aiortc can parse, with audio, but no ICE credentials: rejected before any socket.
NO_ICE_OFFER = (
    "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n"
)


async def call_row(conn: asyncpg.Connection, call_id: str) -> asyncpg.Record:
    row = await conn.fetchrow("select * from public.calls where id = $1", UUID(call_id))
    assert row is not None
    return row


def assert_error(r: httpx.Response, status: int, code: str) -> None:
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert err["code"] == code and err["message"] and "request_id" in err


@pytest.mark.parametrize("auth", ["key", "jwt"])
async def test_p2p_session_makes_a_web_call(
    api: httpx.AsyncClient, world: dict[str, Tenant], conn: asyncpg.Connection, auth: str
) -> None:
    a = world["A"]
    headers = a.key_headers() if auth == "key" else a.jwt_headers()
    agent_id = a.org.rows["agents"]
    r = await api.post("/v1/sessions/web", json={"agent_id": str(agent_id)}, headers=headers)
    assert r.status_code == 201, r.text
    out = r.json()
    assert out == {
        "call_id": out["call_id"],
        "mode": "p2p",
        "offer_url": f"/v1/sessions/web/{out['call_id']}/offer",
    }
    row = await call_row(conn, out["call_id"])
    assert (row["org_id"], row["agent_id"]) == (a.org.id, agent_id)
    assert (row["direction"], row["status"]) == ("web", "created")
    assert row["room_name"] == f"web-{UUID(out['call_id']).hex}"
    assert row["contact_id"] is None and row["ended_at"] is None
    # The caller sees it through the calls API too.
    got = await api.get(f"/v1/calls/{out['call_id']}", headers=headers)
    assert got.status_code == 200 and got.json()["direction"] == "web"


async def test_session_needs_an_agent_of_the_callers_org(
    api: httpx.AsyncClient, world: dict[str, Tenant], conn: asyncpg.Connection
) -> None:
    a, b = world["A"], world["B"]
    before = await conn.fetchval("select count(*) from public.calls")
    for headers in (a.key_headers(), a.jwt_headers()):
        for agent_id in (b.org.rows["agents"], uuid4()):
            r = await api.post(
                "/v1/sessions/web", json={"agent_id": str(agent_id)}, headers=headers
            )
            assert_error(r, 404, "not_found")
    assert await conn.fetchval("select count(*) from public.calls") == before
    bad = await api.post("/v1/sessions/web", json={"agent_id": "nope"}, headers=a.key_headers())
    assert_error(bad, 422, "validation_error")
    assert bad.json()["error"]["details"][0]["field"] == "body.agent_id"
    missing = await api.post("/v1/sessions/web", json={}, headers=a.key_headers())
    assert_error(missing, 422, "validation_error")
    anon = await api.post("/v1/sessions/web", json={"agent_id": str(a.org.rows["agents"])})
    assert_error(anon, 401, "unauthorized")


async def test_livekit_unreachable_is_503_and_a_failed_call(
    db_url: str, world: dict[str, Tenant], conn: asyncpg.Connection, tmp_path: Path
) -> None:
    a = world["A"]
    async with client(db_url, livekit_settings(tmp_path)) as (c, _app):
        started = time.monotonic()
        r = await c.post(
            "/v1/sessions/web",
            json={"agent_id": str(a.org.rows["agents"])},
            headers=a.key_headers(),
        )
        assert time.monotonic() - started < 5
    assert_error(r, 503, "livekit_unavailable")
    assert "token" not in r.text
    row = await conn.fetchrow(
        "select * from public.calls where org_id = $1 and direction = 'web'"
        " and end_reason = 'dispatch_failed'",
        a.org.id,
    )
    assert row is not None
    assert row["status"] == "failed" and row["ended_at"] is not None
    assert row["room_name"].startswith("web-") and row["agent_id"] == a.org.rows["agents"]


def test_participant_token_is_scoped_to_one_room() -> None:
    creds = livekit.Credentials(url="ws://lk:7880", public_url=PUBLIC_URL, key=KEY, secret=SECRET)
    before = datetime.now(UTC)
    tok = livekit.participant_token(creds, "web-abc", name="Web caller", metadata={"call_id": "x"})
    claims = lk.TokenVerifier(KEY, SECRET).verify(tok.token)
    assert claims.identity == tok.identity and tok.identity.startswith("web-")
    assert claims.name == "Web caller" and claims.kind == "standard"
    assert claims.metadata == '{"call_id": "x"}'
    v = claims.video
    assert v is not None
    assert (v.room_join, v.room) == (True, "web-abc")
    assert v.can_publish and v.can_subscribe and v.can_publish_data
    assert v.can_publish_sources == ["microphone"]
    assert not (v.room_create or v.room_admin or v.room_list or v.room_record or v.agent)
    assert claims.room_config is None  # the agent is dispatched explicitly, not by the token
    assert before + timedelta(minutes=5) < tok.expires_at <= before + timedelta(minutes=15)
    with pytest.raises(Exception, match="Signature"):
        lk.TokenVerifier(KEY, "another-secret-of-sufficient-length").verify(tok.token)
    # Two sessions never share an identity (one would kick the other out of the room).
    assert livekit.participant_token(creds, "web-abc", name="n").identity != tok.identity


def test_credentials_follow_the_settings(tmp_path: Path) -> None:
    assert livekit.credentials(livekit_settings(tmp_path, url=None)) is None
    creds = livekit.credentials(livekit_settings(tmp_path))
    assert creds is not None and creds.public_url == creds.url == "ws://127.0.0.1:1"
    public = livekit.credentials(livekit_settings(tmp_path, livekit_public_url=PUBLIC_URL))
    assert public is not None and public.public_url == PUBLIC_URL


async def test_offer_refusals(
    api: httpx.AsyncClient, world: dict[str, Tenant], conn: asyncpg.Connection
) -> None:
    a, b = world["A"], world["B"]
    h = a.key_headers()
    offer = {"sdp": NO_ICE_OFFER, "type": "offer"}
    mine = await insert_call(conn, a)

    theirs = await insert_call(conn, b)
    for headers in (h, a.jwt_headers()):
        for call_id in (theirs, uuid4()):
            r = await api.post(f"/v1/sessions/web/{call_id}/offer", json=offer, headers=headers)
            assert_error(r, 404, "not_found")
    phone = await insert_call(conn, a, direction="outbound", room_name=None)
    r = await api.post(f"/v1/sessions/web/{phone}/offer", json=offer, headers=h)
    assert_error(r, 404, "not_found")

    ended = await insert_call(conn, a, status="failed", end_reason="error")
    r = await api.post(f"/v1/sessions/web/{ended}/offer", json=offer, headers=h)
    assert_error(r, 409, "conflict")
    assert "failed" in r.json()["error"]["message"]

    url = f"/v1/sessions/web/{mine}/offer"
    for body in (
        {"sdp": NO_ICE_OFFER},
        {"sdp": NO_ICE_OFFER, "type": "answer"},
        {"sdp": "", "type": "offer"},
        {"sdp": "x" * 100_001, "type": "offer"},
        {"sdp": "v=0\u0000", "type": "offer"},
        {"sdp": NO_ICE_OFFER, "type": "offer", "pc_id": "p" * 201},
    ):
        assert_error(await api.post(url, json=body, headers=h), 422, "validation_error")

    for sdp, why in (
        ("not sdp at all", "no audio"),
        ("v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\n", "no audio"),
        (NO_ICE_OFFER, "ICE"),
    ):
        r = await api.post(url, json={"sdp": sdp, "type": "offer"}, headers=h)
        assert_error(r, 400, "invalid_offer")
        assert why in r.json()["error"]["message"]
    # A bad offer leaves the call waiting for a good one.
    assert (await call_row(conn, str(mine)))["status"] == "created"
    assert_error(await api.post(url, json=offer), 401, "unauthorized")


async def test_offer_is_refused_in_livekit_mode(
    db_url: str, world: dict[str, Tenant], conn: asyncpg.Connection, tmp_path: Path
) -> None:
    a = world["A"]
    call_id = await insert_call(conn, a)
    async with client(db_url, livekit_settings(tmp_path)) as (c, _app):
        r = await c.post(
            f"/v1/sessions/web/{call_id}/offer",
            json={"sdp": NO_ICE_OFFER, "type": "offer"},
            headers=a.key_headers(),
        )
    assert_error(r, 409, "conflict")
    assert "LiveKit" in r.json()["error"]["message"]
    assert (await call_row(conn, str(call_id)))["status"] == "created"


async def test_openapi_documents_the_session_routes(api: httpx.AsyncClient) -> None:
    doc = (await api.get("/openapi.json")).json()
    create = doc["paths"]["/v1/sessions/web"]["post"]
    assert create["security"] == [{"HTTPBearer": []}]
    assert {"201", "401", "404", "422", "503"} <= set(create["responses"])
    offer = doc["paths"]["/v1/sessions/web/{call_id}/offer"]["post"]
    assert {"200", "400", "404", "409"} <= set(offer["responses"])
    hook = doc["paths"]["/v1/livekit/webhook"]["post"]
    assert "security" not in hook  # LiveKit signs its deliveries; no Bearer credential


async def test_web_calls_nobody_joined_are_swept_once(
    api: httpx.AsyncClient, world: dict[str, Tenant], conn: asyncpg.Connection, db_url: str
) -> None:
    from api.routes.sessions import UNCLAIMED_AFTER, sweep_unclaimed_web_calls
    from parley.db import create_pool

    db_pool = await create_pool(db_url, min_size=1, max_size=1)
    a = world["A"]
    old = datetime.now(UTC) - UNCLAIMED_AFTER - timedelta(minutes=1)
    stale = await insert_call(conn, a, created_at=old)
    fresh = await insert_call(conn, a)  # its caller may still join
    joined = await insert_call(conn, a, created_at=old, status="in_progress", started_at=old)
    assert await sweep_unclaimed_web_calls(db_pool, UNCLAIMED_AFTER) == 1
    assert await sweep_unclaimed_web_calls(db_pool, UNCLAIMED_AFTER) == 0  # idempotent
    await db_pool.close()
    rows = {r["id"]: r for r in await conn.fetch(
        "select id, status, end_reason, ended_at from public.calls where id = any($1)",
        [stale, fresh, joined],
    )}  # fmt: skip
    assert (rows[stale]["status"], rows[stale]["end_reason"]) == ("failed", "never_joined")
    assert rows[stale]["ended_at"] is not None
    assert rows[fresh]["status"] == "created" and rows[joined]["status"] == "in_progress"
    # The API reports it like any other ended call.
    r = await api.get(f"/v1/calls/{stale}", headers=a.key_headers())
    assert r.status_code == 200 and r.json()["status"] == "failed", r.text
