"""LiveKit webhook: signatures (valid, wrong secret, tampered body, missing), duplicates ignored
by event id, each event's effect on the call row (conditional, so a call the worker already
ended keeps its status and reason), no Bearer credential needed, and no room names or phone
numbers in the logs."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from uuid import uuid4

import asyncpg
import httpx
import pytest_asyncio
from livekit.protocol.models import ParticipantInfo
from livekit.protocol.webhook import WebhookEvent
from loguru import logger

from tests.api.conftest import Tenant
from tests.api.livekit_support import (
    client,
    insert_call,
    livekit_settings,
    signature,
    signed,
)

URL = "/v1/livekit/webhook"


@pytest_asyncio.fixture
async def lk_api(db_url: str, world: dict[str, Tenant], tmp_path: Path) -> AsyncIterator[Any]:
    async with client(db_url, livekit_settings(tmp_path)) as (c, _app):
        yield c


async def new_call(conn: asyncpg.Connection, org: Tenant, status: str = "created") -> str:
    room = f"web-{uuid4().hex}"
    await insert_call(conn, org, room_name=room)
    path = {"created": [], "ringing": ["ringing"], "in_progress": ["in_progress"]}
    path["completed"] = [*path["in_progress"], "completed"]
    for step in path[status]:
        extra = ", started_at = now()" if step == "in_progress" else ""
        extra += ", ended_at = now(), end_reason = 'user_left'" if step == "completed" else ""
        await conn.execute(
            f"update public.calls set status = $2{extra} where room_name = $1", room, step
        )
    return room


async def row(conn: asyncpg.Connection, room: str) -> asyncpg.Record:
    r = await conn.fetchrow("select * from public.calls where room_name = $1", room)
    assert r is not None
    return r


def event(kind: str, room: str, *, identity: str = "web-1234", agent: bool = False) -> WebhookEvent:
    ev = WebhookEvent(event=kind, id=f"EV_{uuid4().hex[:12]}", created_at=1_700_000_000)
    ev.room.name = room
    ev.room.sid = "RM_x"
    if kind.startswith("participant_"):
        ev.participant.identity = identity
        ev.participant.sid = "PA_x"
        if agent:
            ev.participant.kind = ParticipantInfo.Kind.AGENT
    return ev


async def post(c: httpx.AsyncClient, ev: WebhookEvent, **sign: str) -> httpx.Response:
    body, auth = signed(ev, **sign)
    return await c.post(
        URL,
        content=body,
        headers={"Authorization": auth, "Content-Type": "application/webhook+json"},
    )


async def test_signatures(lk_api: httpx.AsyncClient, conn: asyncpg.Connection) -> None:
    ev = event("room_started", "web-none")
    ok = await post(lk_api, ev)
    assert ok.status_code == 200, ok.text
    assert ok.json() == {"event": "room_started", "applied": False}

    for headers in ({}, {"Authorization": "Bearer not-a-jwt"}):
        r = await lk_api.post(URL, content=signed(ev)[0], headers=headers)
        assert r.status_code == 401 and r.json()["error"]["code"] == "unauthorized", r.text
    wrong = await post(
        lk_api, event("room_started", "r"), secret="another-secret-that-is-long-enough"
    )
    assert wrong.status_code == 401
    body, auth = signed(event("room_finished", "r"))
    tampered = body.replace('"r"', '"s"')
    r = await lk_api.post(URL, content=tampered, headers={"Authorization": auth})
    assert r.status_code == 401 and r.json()["error"]["code"] == "unauthorized"
    # "Bearer <jwt>" is accepted too (what other LiveKit SDKs and some proxies send).
    body, auth = signed(event("room_started", "r"))
    r = await lk_api.post(URL, content=body, headers={"Authorization": f"Bearer {auth}"})
    assert r.status_code == 200, r.text
    # Correctly signed, but not an event.
    junk = "{not json"
    r = await lk_api.post(URL, content=junk, headers={"Authorization": signature(junk)})
    assert r.status_code == 400 and r.json()["error"]["code"] == "bad_request", r.text
    # Only verified deliveries are remembered.
    assert await conn.fetchval("select count(*) from private.livekit_webhook_events") == 2


async def test_participant_joined_starts_the_call_once(
    lk_api: httpx.AsyncClient, world: dict[str, Tenant], conn: asyncpg.Connection
) -> None:
    room = await new_call(conn, world["A"])
    agent = await post(lk_api, event("participant_joined", room, identity="agent-AJ", agent=True))
    assert agent.json() == {"event": "participant_joined", "applied": False}
    assert (await row(conn, room))["status"] == "created"

    joined = event("participant_joined", room)
    r = await post(lk_api, joined)
    assert r.json() == {"event": "participant_joined", "applied": True}
    first = await row(conn, room)
    assert first["status"] == "in_progress"
    assert first["started_at"] is not None and first["answered_at"] is not None
    # The same delivery again (LiveKit retried): acknowledged, nothing changes.
    again = await post(lk_api, joined)
    assert again.status_code == 200 and again.json()["applied"] is False
    # Another participant joining later changes nothing either (already in progress).
    r = await post(lk_api, event("participant_joined", room, identity="web-second"))
    assert r.json()["applied"] is False
    assert (await row(conn, room))["started_at"] == first["started_at"]
    assert (
        await conn.fetchval(
            "select count(*) from private.livekit_webhook_events where id = $1", joined.id
        )
        == 1
    )


async def test_room_finished_closes_what_is_open(
    lk_api: httpx.AsyncClient, world: dict[str, Tenant], conn: asyncpg.Connection
) -> None:
    a = world["A"]
    talking, waiting, ringing, done = [
        await new_call(conn, a, s) for s in ("in_progress", "created", "ringing", "completed")
    ]
    for room in (talking, waiting, ringing, done):
        r = await post(lk_api, event("participant_left", room))
        assert r.json()["applied"] is False  # the worker follows the caller, not the webhook
        r = await post(lk_api, event("room_finished", room))
        assert r.status_code == 200, r.text
    t, w, g, d = [await row(conn, r) for r in (talking, waiting, ringing, done)]
    assert (t["status"], t["end_reason"]) == ("completed", "room_finished")
    assert t["ended_at"] is not None and t["ended_at"] >= t["started_at"]
    assert (w["status"], w["end_reason"]) == ("failed", "no_participant")
    assert (g["status"], g["end_reason"]) == ("failed", "no_participant")
    # The worker ended this one first: its status and reason stay.
    assert (d["status"], d["end_reason"]) == ("completed", "user_left")
    # A late participant_joined for a finished room is harmless (no illegal transition).
    r = await post(lk_api, event("participant_joined", waiting))
    assert r.status_code == 200 and r.json()["applied"] is False
    assert (await row(conn, waiting))["status"] == "failed"


async def test_unknown_rooms_and_other_events_are_acknowledged(
    lk_api: httpx.AsyncClient, world: dict[str, Tenant], conn: asyncpg.Connection
) -> None:
    room = await new_call(conn, world["B"])
    for kind in ("room_started", "track_published", "egress_started"):
        r = await post(lk_api, event(kind, room))
        assert r.json() == {"event": kind, "applied": False}
    r = await post(lk_api, event("room_finished", "web-unknown"))
    assert r.json() == {"event": "room_finished", "applied": False}
    assert (await row(conn, room))["status"] == "created"


async def test_no_room_names_or_numbers_in_logs(
    lk_api: httpx.AsyncClient, world: dict[str, Tenant], conn: asyncpg.Connection
) -> None:
    # A SIP room as LiveKit's individual dispatch rule names it: the caller's number inside.
    room = "call-_+14155550123_aBcD"
    await insert_call(
        conn, world["A"], direction="inbound", room_name=room, from_number="+14155550123"
    )
    lines: list[str] = []
    sink = logger.add(lines.append, level="DEBUG", format="{message} {extra}")
    try:
        ev = event("participant_joined", room, identity="sip_+14155550123")
        assert (await post(lk_api, ev)).json()["applied"] is True
        await post(lk_api, ev)
        await post(lk_api, event("room_finished", room))
    finally:
        logger.remove(sink)
    text = "".join(lines)
    assert "webhook" in text
    assert "+1415" not in text and "14155550123" not in text
    assert (await row(conn, room))["end_reason"] == "room_finished"


async def test_not_configured_is_404(api: httpx.AsyncClient) -> None:
    body, auth = signed(event("room_started", "r"))
    r = await api.post(URL, content=body, headers={"Authorization": auth})
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
