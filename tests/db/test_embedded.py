"""The embedded Postgres: default when DATABASE_URL is unset, data survives restarts, clear
errors; database_url / open_database."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from parley.db.database import database_url, describe_database, open_database
from parley.db.embedded import start_embedded, stop_embedded
from parley.db.errors import EmbeddedPostgresError
from parley.db.migrate import migrate
from parley.db.pool import connect, redact_dsn
from parley.db.settings import DatabaseSettings
from parley.settings import Settings
from tests.db.conftest import insert


async def test_embedded_default_survives_restart(pg_scratch_dir: Path) -> None:
    settings = Settings(data_dir=pg_scratch_dir / "parley-data")
    pgdata = settings.data_dir / "pg"
    started = time.monotonic()
    url = await database_url(settings)
    first_start = time.monotonic() - started
    assert (pgdata / "PG_VERSION").read_text().strip() == "16"
    assert await database_url(settings) == url  # once per process
    try:
        started = time.monotonic()
        assert await migrate(url)
        migrate_s = time.monotonic() - started
        conn = await connect(url)
        await insert(conn, "organizations", {"name": "Survivor"})
        await conn.execute("create extension if not exists vector with schema extensions")
        await conn.close()
    finally:
        stop_embedded(pgdata)
    assert not (pgdata / "postmaster.pid").exists()

    started = time.monotonic()
    url = await database_url(settings)
    restart = time.monotonic() - started
    try:
        assert await migrate(url) == []
        conn = await connect(url)
        names = await conn.fetch("select name from public.organizations")
        await conn.close()
        assert [r["name"] for r in names] == ["Survivor"]
    finally:
        stop_embedded(pgdata)
    print(f"\nfirst start {first_start:.2f} s, migrate {migrate_s:.2f} s, restart {restart:.2f} s")


async def test_database_url_prefers_database_url(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql+asyncpg://app:s3cret@db.internal:5432/parley")
    settings = Settings(data_dir=tmp_path)
    assert await database_url(settings) == "postgresql://app:s3cret@db.internal:5432/parley"
    assert not (tmp_path / "pg").exists()
    assert describe_database(settings) == "postgresql://app:***@db.internal:5432/parley"
    monkeypatch.delenv("DATABASE_URL")
    assert describe_database(settings) == f"the embedded Postgres in {tmp_path / 'pg'}"


def test_redact_dsn() -> None:
    assert redact_dsn("postgresql://u:pw@h/db") == "postgresql://u:***@h/db"
    assert redact_dsn("postgresql://u@h/db") == "postgresql://u@h/db"


def test_unusable_data_dir_is_a_clear_error(tmp_path: Path) -> None:
    not_a_dir = tmp_path / "pg"
    not_a_dir.write_text("oops")
    with pytest.raises(EmbeddedPostgresError, match="cannot start the embedded Postgres") as info:
        start_embedded(not_a_dir)
    assert "fix: " in str(info.value)
    assert "must be a folder" in str(info.value)


def test_foreign_folder_is_a_clear_error(pg_scratch_dir: Path) -> None:
    pgdata = pg_scratch_dir / "pg"
    pgdata.mkdir()
    (pgdata / "notes.txt").write_text("not a database")
    with pytest.raises(EmbeddedPostgresError, match="holds other files") as info:
        start_embedded(pgdata)
    assert str(pgdata) in str(info.value)
    assert (pgdata / "notes.txt").read_text() == "not a database"


async def test_open_database_migrates_and_pools(db_url: str) -> None:
    db = DatabaseSettings(url=db_url, pool_max_size=2)
    async with open_database(db_settings=db) as pool:
        assert await pool.fetchval("select count(*) from supabase_migrations.schema_migrations")
        vec = await pool.fetchval("select '[1,2,3]'::extensions.vector")
        assert vec.to_list() == [1.0, 2.0, 3.0]
