"""CHECK constraints, foreign keys across tenants, triggers and generated columns."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import asyncpg
import pytest

from tests.db.conftest import AGENT_CONFIG, Org, insert, new_row


@pytest.mark.parametrize(
    "phone",
    ["4155550123", "+0123456789", "+1 415 555 0123", "+1234567890123456", "+", "+1415555012a"],
)
async def test_contacts_reject_non_e164(
    conn: asyncpg.Connection, world: dict[str, Org], phone: str
) -> None:
    with pytest.raises(asyncpg.CheckViolationError, match="contacts_phone_e164"):
        await insert(conn, "contacts", {"org_id": world["A"].id, "phone": phone})


async def test_contacts_accept_e164_and_unique_per_org(
    conn: asyncpg.Connection, world: dict[str, Org]
) -> None:
    a, b = world["A"], world["B"]
    for phone in ("+14155550123", "+442071838750", "+33142685300"):
        await insert(conn, "contacts", {"org_id": a.id, "phone": phone})
    with pytest.raises(asyncpg.UniqueViolationError):
        await insert(conn, "contacts", {"org_id": a.id, "phone": "+14155550123"})
    await insert(conn, "contacts", {"org_id": b.id, "phone": "+14155550123"})


@pytest.mark.parametrize("tz", ["America/New_York", "Europe/Paris", "UTC", "Asia/Kolkata"])
async def test_contacts_accept_iana_zones(
    conn: asyncpg.Connection, world: dict[str, Org], tz: str
) -> None:
    await insert(conn, "contacts", {"org_id": world["A"].id, "phone": "+15550001", "time_zone": tz})


@pytest.mark.parametrize("tz", ["Mars/Olympus_Mons", "PST", "UTC+5", "america/new_york", ""])
async def test_contacts_reject_other_zones(
    conn: asyncpg.Connection, world: dict[str, Org], tz: str
) -> None:
    with pytest.raises(asyncpg.ForeignKeyViolationError, match="time_zones"):
        await insert(
            conn, "contacts", {"org_id": world["A"].id, "phone": "+15550001", "time_zone": tz}
        )


async def test_consent_needs_a_date(conn: asyncpg.Connection, world: dict[str, Org]) -> None:
    values: dict[str, object] = {"org_id": world["A"].id, "phone": "+15550002", "consent": True}
    with pytest.raises(asyncpg.CheckViolationError, match="contacts_consent_at"):
        await insert(conn, "contacts", values)
    await insert(conn, "contacts", {**values, "consent_at": datetime.now(UTC)})


@pytest.mark.parametrize(
    ("table", "column", "bad"),
    [
        ("calls", "status", "bogus"),
        ("calls", "direction", "sideways"),
        ("calls", "to_number", "555-0100"),
        ("call_turns", "role", "system"),
        ("call_turns", "voice_to_voice_ms", -1),
        ("documents", "status", "done"),
        ("documents", "source_type", "pdf"),
        ("memberships", "role", "superuser"),
        ("call_analysis", "sentiment", "happy"),
        ("chunks", "ordinal", -1),
    ],
)
async def test_check_constraints_reject_bad_values(
    conn: asyncpg.Connection, world: dict[str, Org], table: str, column: str, bad: object
) -> None:
    values = {**new_row(table, world["A"], n=5), column: bad}
    with pytest.raises(asyncpg.CheckViolationError):
        await insert(conn, table, values)


async def test_call_status_lifecycle(conn: asyncpg.Connection, world: dict[str, Org]) -> None:
    call = await insert(conn, "calls", new_row("calls", world["A"]))
    sql = "update public.calls set status = $1 where id = $2"
    for status in ("ringing", "in_progress", "completed"):
        await conn.execute(sql, status, call)
    for status in ("in_progress", "created", "failed"):
        with pytest.raises(asyncpg.CheckViolationError, match="cannot go from completed"):
            await conn.execute(sql, status, call)
    skipped = await insert(conn, "calls", new_row("calls", world["A"]))
    with pytest.raises(asyncpg.CheckViolationError, match="cannot go from created to completed"):
        await conn.execute(sql, "completed", skipped)
    await conn.execute(sql, "no_answer", skipped)


async def test_turn_index_is_unique_per_call(
    conn: asyncpg.Connection, world: dict[str, Org]
) -> None:
    values = new_row("call_turns", world["A"], n=3)
    await insert(conn, "call_turns", values)
    with pytest.raises(asyncpg.UniqueViolationError):
        await insert(conn, "call_turns", values)


@pytest.mark.parametrize(
    ("table", "parent"),
    [
        ("documents", "knowledge_base_id"),
        ("chunks", "document_id"),
        ("calls", "agent_id"),
        ("call_turns", "call_id"),
        ("call_analysis", "call_id"),
    ],
)
async def test_rows_cannot_point_at_another_orgs_rows(
    conn: asyncpg.Connection, world: dict[str, Org], table: str, parent: str
) -> None:
    """Composite foreign keys (id, org_id): even the service path cannot mix tenants."""
    values = new_row(table, world["A"], n=4)
    source = {"knowledge_base_id": "knowledge_bases", "document_id": "documents"}
    values[parent] = world["B"].rows[source.get(parent, parent.removesuffix("_id") + "s")]
    with pytest.raises(asyncpg.ForeignKeyViolationError):
        await insert(conn, table, values)


async def test_agent_name_comes_from_config(
    conn: asyncpg.Connection, world: dict[str, Org]
) -> None:
    agent = world["A"].rows["agents"]
    assert (
        await conn.fetchval("select name from public.agents where id = $1", agent)
        == (AGENT_CONFIG["name"])
    )
    renamed = json.dumps({**AGENT_CONFIG, "name": "Receptionist"})
    await conn.execute("update public.agents set config = $1 where id = $2", renamed, agent)
    assert await conn.fetchval("select name from public.agents where id = $1", agent) == (
        "Receptionist"
    )
    with pytest.raises(asyncpg.IntegrityConstraintViolationError):
        await insert(conn, "agents", {"org_id": world["A"].id, "config": "[1, 2]"})
    with pytest.raises(asyncpg.NotNullViolationError):
        await insert(conn, "agents", {"org_id": world["A"].id, "config": "{}"})


async def test_updated_at_trigger(conn: asyncpg.Connection, world: dict[str, Org]) -> None:
    contact = world["A"].rows["contacts"]
    before = await conn.fetchval("select updated_at from public.contacts where id = $1", contact)
    await conn.execute("update public.contacts set name = 'Ann' where id = $1", contact)
    after = await conn.fetchval("select updated_at from public.contacts where id = $1", contact)
    assert after > before


async def test_deleting_an_agent_keeps_its_calls(
    conn: asyncpg.Connection, world: dict[str, Org]
) -> None:
    a = world["A"]
    await conn.execute("delete from public.agents where id = $1", a.rows["agents"])
    row = await conn.fetchrow(
        "select agent_id, org_id from public.calls where id = $1", a.rows["calls"]
    )
    assert row is not None
    assert (row["agent_id"], row["org_id"]) == (None, a.id)


async def test_deleting_an_org_removes_everything(
    conn: asyncpg.Connection, world: dict[str, Org]
) -> None:
    a = world["A"]
    await conn.execute("delete from public.organizations where id = $1", a.id)
    for table in ("memberships", "agents", "chunks", "calls", "call_turns", "call_analysis"):
        sql = f"select count(*) from public.{table} where org_id = $1"
        assert await conn.fetchval(sql, a.id) == 0
