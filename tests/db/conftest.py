"""Database tests run against a real embedded Postgres (one cluster per session).

The fixtures live in parley.db.testing so that other test folders can import them too.
``world`` adds two organizations (A and B) with one row in every table each.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import asyncpg
import numpy as np
import pytest
import pytest_asyncio

from parley.db.pool import connect
from parley.db.testing import (
    TIMINGS,
    db_pool,
    db_url,
    empty_db_url,
    migrated_template,
    pg_scratch_dir,
    pg_server,
)

# Re-exported so pytest finds the shared fixtures here (listing them also keeps ruff content).
__all__ = [
    "db_pool",
    "db_url",
    "empty_db_url",
    "migrated_template",
    "pg_scratch_dir",
    "pg_server",
]

AGENT_CONFIG = {"name": "Test agent", "system_prompt": "Answer briefly."}


@pytest.fixture(autouse=True)
def _no_database_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """A developer's DATABASE_URL must never be the target of these tests."""
    for name in ("DATABASE_URL", "PARLEY_DB_URL", "PARLEY_DB_EMBEDDED_DIR"):
        monkeypatch.delenv(name, raising=False)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if TIMINGS:
        parts = ", ".join(f"{k.removesuffix('_s')} {v:.2f} s" for k, v in TIMINGS.items())
        terminalreporter.write_line(f"embedded Postgres (session): {parts}")


# Every tenant table, parents first.
TABLES = [
    "organizations",
    "memberships",
    "api_keys",
    "agents",
    "knowledge_bases",
    "documents",
    "chunks",
    "contacts",
    "calls",
    "call_turns",
    "call_analysis",
]


def vector(seed: int) -> list[float]:
    return np.random.default_rng(seed).standard_normal(384).astype(np.float32).tolist()


@dataclass
class Org:
    """One organization of the world: its id, its owner and a member, and one row per table."""

    id: uuid.UUID
    owner: uuid.UUID
    member: uuid.UUID | None = None
    rows: dict[str, uuid.UUID] = field(default_factory=dict)


async def add_user(conn: asyncpg.Connection, email: str) -> uuid.UUID:
    user_id: uuid.UUID = await conn.fetchval(
        "insert into auth.users (email) values ($1) returning id", email
    )
    return user_id


async def insert(conn: asyncpg.Connection, table: str, values: dict[str, object]) -> uuid.UUID:
    cols = ", ".join(values)
    params = ", ".join(f"${i}" for i in range(1, len(values) + 1))
    row_id: uuid.UUID = await conn.fetchval(
        f"insert into public.{table} ({cols}) values ({params}) returning id", *values.values()
    )
    return row_id


def new_row(table: str, org: Org, n: int = 1) -> dict[str, object]:
    """Values for a new row of ``table`` in ``org`` (parents taken from ``org.rows``)."""
    r = org.rows
    suffix = uuid.uuid4().hex[:8]
    builders: dict[str, Callable[[], dict[str, object]]] = {
        "organizations": lambda: {"name": f"Org {suffix}"},
        "memberships": lambda: {"org_id": org.id, "user_id": r["spare_user"], "role": "member"},
        "api_keys": lambda: {
            "org_id": org.id,
            "name": "key",
            "prefix": f"pk_{suffix}",
            "key_hash": "a" * 64,
        },
        "agents": lambda: {"org_id": org.id, "config": json.dumps(AGENT_CONFIG)},
        "knowledge_bases": lambda: {"org_id": org.id, "name": f"KB {suffix}"},
        "documents": lambda: {
            "org_id": org.id,
            "knowledge_base_id": r["knowledge_bases"],
            "source_type": "text",
            "title": "Doc",
        },
        "chunks": lambda: {
            "org_id": org.id,
            "knowledge_base_id": r["knowledge_bases"],
            "document_id": r["documents"],
            "ordinal": 100 + n,
            "content": "chunk",
            "embedding": vector(n),
        },
        "contacts": lambda: {"org_id": org.id, "phone": f"+1415555{n:04d}"},
        "calls": lambda: {"org_id": org.id, "direction": "web", "agent_id": r["agents"]},
        "call_turns": lambda: {
            "org_id": org.id,
            "call_id": r["calls"],
            "idx": 100 + n,
            "role": "user",
            "text": "hi",
        },
        "call_analysis": lambda: {"org_id": org.id, "call_id": r["spare_call"], "summary": "s"},
    }
    return builders[table]()


async def build_world(conn: asyncpg.Connection) -> dict[str, Org]:
    """Two organizations with one row in every table, made on the service path."""
    world: dict[str, Org] = {}
    for key in ("A", "B"):
        owner = await add_user(conn, f"owner-{key.lower()}@example.com")
        org_id = await insert(conn, "organizations", {"name": f"Org {key}", "created_by": owner})
        org = Org(org_id, owner)
        org.rows["organizations"] = org_id
        await insert(conn, "memberships", {"org_id": org_id, "user_id": owner, "role": "owner"})
        org.member = await add_user(conn, f"member-{key.lower()}@example.com")
        org.rows["memberships"] = await insert(
            conn, "memberships", {"org_id": org_id, "user_id": org.member, "role": "member"}
        )
        org.rows["spare_user"] = await add_user(conn, f"spare-{key.lower()}@example.com")
        for table in TABLES[2:-1]:  # after organizations/memberships; analysis needs a spare call
            org.rows[table] = await insert(conn, table, new_row(table, org))
        org.rows["spare_call"] = await insert(conn, "calls", new_row("calls", org))
        analysed = await insert(conn, "calls", new_row("calls", org))
        org.rows["call_analysis"] = await insert(
            conn, "call_analysis", {"org_id": org_id, "call_id": analysed, "summary": "ok"}
        )
        world[key] = org
    return world


@pytest_asyncio.fixture
async def conn(db_url: str) -> AsyncIterator[asyncpg.Connection]:
    """A service-path connection (database owner, bypasses RLS) to a fresh migrated DB."""
    c = await connect(db_url)
    try:
        yield c
    finally:
        await c.close()


@pytest_asyncio.fixture
async def world(conn: asyncpg.Connection) -> dict[str, Org]:
    return await build_world(conn)
