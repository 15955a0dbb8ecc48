"""Calls API (read-only): rows seeded on the service path as the voice workers would write
them, then filters, newest-first cursor pages, the transcript in order, and the analysis."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import asyncpg
import httpx

from tests.api.conftest import Tenant
from tests.db.conftest import insert

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


async def seed_call(conn: asyncpg.Connection, org_id: UUID, minutes: int, **cols: Any) -> UUID:
    created_at = T0 + timedelta(minutes=minutes)
    values = {"org_id": org_id, "direction": "outbound", "created_at": created_at, **cols}
    return await insert(conn, "calls", values)


async def test_filters_and_pagination(
    api: httpx.AsyncClient, world: dict[str, Tenant], conn: asyncpg.Connection
) -> None:
    a = world["A"]
    org, agent, contact = a.org.id, a.org.rows["agents"], a.org.rows["contacts"]
    ids = {}
    for i, (status, direction) in enumerate(
        [
            ("completed", "outbound"),
            ("failed", "outbound"),
            ("completed", "inbound"),
            ("no_answer", "outbound"),
            ("in_progress", "web"),
        ]
    ):
        ids[i] = await seed_call(
            conn,
            org,
            i,
            status=status,
            direction=direction,
            agent_id=agent,
            contact_id=contact if direction != "web" else None,
        )
    h = a.key_headers()

    async def listed(**params: Any) -> list[str]:
        r = await api.get("/v1/calls", params=params, headers=h)
        assert r.status_code == 200, r.text
        return [c["id"] for c in r.json()["items"]]

    window = {
        "created_after": T0.isoformat(),
        "created_before": (T0 + timedelta(hours=1)).isoformat(),
    }
    # Newest first.
    assert await listed(**window) == [str(ids[i]) for i in (4, 3, 2, 1, 0)]
    assert await listed(status=["completed", "failed"], **window) == [
        str(ids[i]) for i in (2, 1, 0)
    ]
    assert await listed(direction="inbound") == [str(ids[2])]
    assert set(await listed(contact_id=str(contact), **window)) == {str(ids[i]) for i in range(4)}
    assert len(await listed(agent_id=str(agent), limit=100)) == 5 + 3  # + the world's 3 calls
    # A naive timestamp is UTC; the lower bound is inclusive, the upper exclusive.
    naive = (T0 + timedelta(minutes=1)).replace(tzinfo=None).isoformat()
    assert await listed(
        created_after=naive, created_before=(T0 + timedelta(minutes=3)).isoformat()
    ) == [
        str(ids[2]),
        str(ids[1]),
    ]

    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 2, **window, **({"cursor": cursor} if cursor else {})}
        page = (await api.get("/v1/calls", params=params, headers=h)).json()
        seen += [c["id"] for c in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert seen == [str(ids[i]) for i in (4, 3, 2, 1, 0)]

    bad = await api.get("/v1/calls", params={"status": "done"}, headers=h)
    assert bad.status_code == 422 and bad.json()["error"]["details"][0]["field"].startswith("query")


async def test_detail_transcript_and_analysis(
    api: httpx.AsyncClient, world: dict[str, Tenant], conn: asyncpg.Connection
) -> None:
    a = world["A"]
    started = T0 + timedelta(seconds=5)
    call = await seed_call(
        conn,
        a.org.id,
        0,
        status="completed",
        agent_id=a.org.rows["agents"],
        contact_id=a.org.rows["contacts"],
        from_number="+14155550000",
        to_number="+14155550001",
        started_at=started,
        answered_at=started + timedelta(seconds=3),
        ended_at=started + timedelta(seconds=93),
        end_reason="agent_hangup",
        metadata=json.dumps({"campaign": "recall"}),
    )
    chunk = a.org.rows["chunks"]
    # Inserted out of order: the API returns them by idx.
    for idx, role, text, v2v in [
        (2, "user", "Saturday?", None),
        (0, "assistant", "Hello!", None),
        (3, "assistant", "Nine to noon.", 640),
        (1, "user", "Hours?", None),
    ]:
        await conn.execute(
            "insert into public.call_turns (org_id, call_id, idx, role, text, stt_final_ms,"
            " llm_first_token_ms, tts_first_audio_ms, voice_to_voice_ms, knowledge_chunk_ids)"
            " values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
            a.org.id,
            call,
            idx,
            role,
            text,
            180 if role == "user" else None,
            250 if v2v else None,
            120 if v2v else None,
            v2v,
            [chunk] if v2v else [],
        )
    h = a.jwt_headers()
    detail = (await api.get(f"/v1/calls/{call}", headers=h)).json()
    assert detail["agent_id"] == str(a.org.rows["agents"])
    assert detail["contact_id"] == str(a.org.rows["contacts"])
    assert (detail["status"], detail["end_reason"], detail["duration_s"]) == (
        "completed",
        "agent_hangup",
        93.0,
    )
    assert detail["metadata"] == {"campaign": "recall"} and detail["answered_at"]

    transcript = (await api.get(f"/v1/calls/{call}/transcript", headers=h)).json()
    turns = transcript["turns"]
    assert [t["idx"] for t in turns] == [0, 1, 2, 3]
    assert [t["text"] for t in turns] == ["Hello!", "Hours?", "Saturday?", "Nine to noon."]
    last = turns[-1]
    assert (last["llm_first_token_ms"], last["tts_first_audio_ms"], last["voice_to_voice_ms"]) == (
        250,
        120,
        640,
    )
    assert last["knowledge_chunk_ids"] == [str(chunk)] and turns[1]["stt_final_ms"] == 180

    none_yet = await api.get(f"/v1/calls/{call}/analysis", headers=h)
    assert none_yet.status_code == 404 and "no analysis yet" in none_yet.json()["error"]["message"]
    await conn.execute(
        "insert into public.call_analysis (org_id, call_id, summary, sentiment, outcome, data)"
        " values ($1, $2, 'Asked about hours', 'positive', 'answered', $3)",
        a.org.id,
        call,
        json.dumps({"booked": False}),
    )
    analysis = (await api.get(f"/v1/calls/{call}/analysis", headers=h)).json()
    assert analysis["summary"] == "Asked about hours" and analysis["data"] == {"booked": False}
    assert analysis["sentiment"] == "positive" and analysis["call_id"] == str(call)

    empty = await seed_call(conn, a.org.id, 1)
    assert (await api.get(f"/v1/calls/{empty}/transcript", headers=h)).json()["turns"] == []
    missing = "00000000-0000-0000-0000-000000000000"
    for path in ("", "/transcript", "/analysis"):
        r = await api.get(f"/v1/calls/{missing}{path}", headers=h)
        assert r.status_code == 404 and r.json()["error"]["message"] == "call not found"


async def test_forged_cursors_and_odd_timestamps_are_client_errors(
    api: httpx.AsyncClient, world: dict[str, Tenant]
) -> None:
    """Found while fuzzing: these reached the database and failed there (500)."""
    h = world["A"].key_headers()

    def forged(payload: object) -> str:
        return base64.urlsafe_b64encode(json.dumps(payload).encode()).decode().rstrip("=")

    for payload in (
        ["2026-01-01T00:00:00+00:00", 5],
        ["0001-01-01T00:00:00+05:00", "00000000-0000-0000-0000-000000000000"],
        {"a": 1},
    ):
        r = await api.get("/v1/calls", params={"cursor": forged(payload)}, headers=h)
        assert r.status_code == 400 and r.json()["error"]["code"] == "bad_cursor", payload
    for value in ("0001-01-01T00:00:00+05:00", "0.5", "1700000000"):
        r = await api.get("/v1/calls", params={"created_after": value}, headers=h)
        assert r.status_code == 422 and r.json()["error"]["code"] == "validation_error", value
