"""Migrations: apply on an empty database, idempotent, tracked like the Supabase CLI, atomic,
safe to run from two processes at once; reset; the auth shim."""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path

import asyncpg
import pytest

from parley.config import parse_agent
from parley.db.errors import MigrationError
from parley.db.migrate import (
    applied_versions,
    install_shim,
    load_migrations,
    migrate,
    reset,
)
from parley.db.pool import connect
from parley.db.settings import DEFAULT_SUPABASE_DIR
from parley.db.sqltext import split_statements
from tests.db.conftest import TABLES, insert

EXPECTED_TABLES = set(TABLES)


async def _tables(url: str) -> set[str]:
    conn = await connect(url)
    try:
        rows = await conn.fetch("select tablename from pg_tables where schemaname = 'public'")
        return {r["tablename"] for r in rows}
    finally:
        await conn.close()


async def test_migrate_empty_database_then_no_op(empty_db_url: str) -> None:
    files = load_migrations()
    assert len(files) >= 3
    assert await migrate(empty_db_url) == [m.version for m in files]
    assert await _tables(empty_db_url) >= EXPECTED_TABLES
    assert await migrate(empty_db_url) == []

    conn = await connect(empty_db_url)
    try:
        rows = await conn.fetch(
            "select version, name, statements from supabase_migrations.schema_migrations"
            " order by version"
        )
        assert await conn.fetchval("select extversion from pg_extension where extname = 'vector'")
    finally:
        await conn.close()
    assert [(r["version"], r["name"], r["statements"]) for r in rows] == [
        (m.version, m.name, m.statements()) for m in files
    ]


async def test_two_processes_migrating_at_once(empty_db_url: str) -> None:
    first, second = await asyncio.gather(migrate(empty_db_url), migrate(empty_db_url))
    assert sorted(first + second) == [m.version for m in load_migrations()]
    assert not (set(first) & set(second))


def _copy_supabase(tmp_path: Path) -> Path:
    target = tmp_path / "supabase"
    shutil.copytree(DEFAULT_SUPABASE_DIR, target)
    return target


async def test_failed_migration_leaves_nothing(empty_db_url: str, tmp_path: Path) -> None:
    supabase = _copy_supabase(tmp_path)
    broken = supabase / "migrations" / "29990101000000_broken.sql"
    broken.write_text("create table public.half_done (id int);\nselect 1 / 0;\n")
    with pytest.raises(MigrationError, match=r"29990101000000_broken.sql failed at statement 2"):
        await migrate(empty_db_url, supabase_dir=supabase)
    assert "half_done" not in await _tables(empty_db_url)
    conn = await connect(empty_db_url)
    try:
        assert await applied_versions(conn) == [m.version for m in load_migrations()]
    finally:
        await conn.close()
    broken.write_text("create table public.half_done (id int);\n")
    assert await migrate(empty_db_url, supabase_dir=supabase) == ["29990101000000"]


def test_badly_named_file_is_refused(tmp_path: Path) -> None:
    supabase = _copy_supabase(tmp_path)
    (supabase / "migrations" / "add_things.sql").write_text("select 1;")
    with pytest.raises(MigrationError, match="<timestamp>_<name>.sql"):
        load_migrations(supabase)


async def test_reset_drops_data_and_seeds(db_url: str) -> None:
    conn = await connect(db_url)
    try:
        await insert(conn, "organizations", {"name": "Doomed"})
        await conn.execute("create table public.stray (id int)")
        await conn.execute(
            "create function public.stray_fn() returns int language sql as 'select 1'"
        )
        assert await reset(db_url) == [m.version for m in load_migrations()]
        names = [r["name"] for r in await conn.fetch("select name from public.organizations")]
        assert names == ["Parley Dev"]
        assert await conn.fetchval("select count(*) from auth.users") == 1
        assert await conn.fetchval("select to_regclass('public.stray')") is None
        assert await conn.fetchval("select to_regprocedure('public.stray_fn()')") is None
        config = await conn.fetchval("select config from public.agents")
        parse_agent(json.loads(config), "seed agent")
        # default privileges of schema public survive the reset
        grants = await conn.fetchval(
            "select has_table_privilege('authenticated', 'public.agents', 'select')"
        )
        assert grants
        assert await reset(db_url, with_seed=False)
        assert await conn.fetchval("select count(*) from public.organizations") == 0
    finally:
        await conn.close()
    assert await migrate(db_url) == []


async def test_shim_is_idempotent_and_like_supabase(empty_db_url: str) -> None:
    conn = await connect(empty_db_url)
    try:
        assert await install_shim(conn)
        assert await install_shim(conn)
        roles = {
            r["rolname"]: r
            for r in await conn.fetch(
                "select rolname, rolcanlogin, rolbypassrls from pg_roles"
                " where rolname in ('anon', 'authenticated', 'service_role')"
            )
        }
        assert set(roles) == {"anon", "authenticated", "service_role"}
        assert not any(r["rolcanlogin"] for r in roles.values())
        assert roles["service_role"]["rolbypassrls"]
        assert not roles["authenticated"]["rolbypassrls"]
        async with conn.transaction():
            sub = "6f1c2d9e-3b7a-4c1e-9a55-0d2f8e4b7c11"
            await conn.execute(
                "select set_config('request.jwt.claims', $1, true)",
                json.dumps({"sub": sub, "role": "authenticated"}),
            )
            assert str(await conn.fetchval("select auth.uid()")) == sub
            assert await conn.fetchval("select auth.role()") == "authenticated"
            assert await conn.fetchval("select auth.jwt() ->> 'sub'") == sub
        async with conn.transaction():  # the legacy per-claim setting wins, as on Supabase
            await conn.execute("select set_config('request.jwt.claim.sub', $1, true)", sub)
            assert str(await conn.fetchval("select auth.uid()")) == sub
        assert await conn.fetchval("select auth.uid()") is None
    finally:
        await conn.close()


async def test_shim_is_skipped_on_supabase(empty_db_url: str) -> None:
    conn = await connect(empty_db_url)
    try:
        await conn.execute("create role supabase_admin nologin")
        try:
            assert not await install_shim(conn)
            assert await conn.fetchval("select to_regnamespace('auth')") is None
        finally:
            await conn.execute("drop role supabase_admin")
    finally:
        await conn.close()


def test_migration_files_split_cleanly() -> None:
    """Every statement is a whole statement (dollar-quoted bodies stay in one piece)."""
    for m in load_migrations():
        for statement in m.statements():
            assert statement.count("$$") % 2 == 0, statement[:200]
            assert not statement.rstrip().endswith(";")


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        ("select 1; select 2;", ["select 1", "select 2"]),
        ("select ';'; select 2", ["select ';'", "select 2"]),
        ("-- a; comment\nselect 1;", ["-- a; comment\nselect 1"]),
        ("/* a; /* nested; */ b; */ select 1;", ["/* a; /* nested; */ b; */ select 1"]),
        (
            "do $x$ begin perform 1; end $x$; select 2",
            ["do $x$ begin perform 1; end $x$", "select 2"],
        ),
        ("select E'it\\'s; fine'; select 2", ["select E'it\\'s; fine'", "select 2"]),
        ('select 1 as "a;b"; select 2', ['select 1 as "a;b"', "select 2"]),
        ("select 'it''s;'; -- trailing\n", ["select 'it''s;'"]),
        ("select $1; select 2", ["select $1", "select 2"]),
    ],
)
def test_split_statements(sql: str, expected: list[str]) -> None:
    assert split_statements(sql) == expected


async def test_connection_errors_are_typed() -> None:
    from parley.db.errors import DatabaseUnavailable

    with pytest.raises(DatabaseUnavailable, match="fix:"):
        await connect("postgresql://postgres@/postgres?host=/nonexistent-socket-dir")


async def test_vector_extension_lives_in_extensions(db_url: str) -> None:
    conn = await connect(db_url)
    try:
        schema = await conn.fetchval(
            "select n.nspname from pg_extension e join pg_namespace n on n.oid = e.extnamespace"
            " where e.extname = 'vector'"
        )
        assert schema == "extensions"
        with pytest.raises(asyncpg.UndefinedTableError):
            await conn.fetch("select * from supabase_migrations.nope")
    finally:
        await conn.close()
