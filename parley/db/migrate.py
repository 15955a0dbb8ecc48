"""Apply supabase/migrations/*.sql at start-up, tracked the way the Supabase CLI tracks them.

* Files are ``<version>_<name>.sql`` (version = digits, usually a UTC timestamp), applied in
  file-name order. Each applied file is a row of ``supabase_migrations.schema_migrations
  (version, statements, name)`` — the CLI's own table, so ``supabase migration list`` and
  ``supabase db push`` agree with Parley about what is applied.
* Each migration runs in its own transaction: a failing file leaves nothing behind.
* A Postgres advisory lock serialises processes that start together; the second one waits and
  then finds nothing left to do.
* On any database other than Supabase, the auth shim (``supabase_shim.sql``) is installed first.
"""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import asyncpg
from loguru import logger

from parley.db.errors import MigrationError
from parley.db.pool import connect
from parley.db.settings import DEFAULT_SUPABASE_DIR
from parley.db.sqltext import split_statements

SHIM_SQL = Path(__file__).with_name("supabase_shim.sql")
RESET_SQL = Path(__file__).with_name("reset.sql")
_FILE = re.compile(r"^([0-9]+)_(.*)\.sql$")
_LOCK = "hashtextextended('parley.db.migrate', 0)"
_TRACKING_DDL = """
create schema if not exists supabase_migrations;
create table if not exists supabase_migrations.schema_migrations (
  version text not null primary key
);
alter table supabase_migrations.schema_migrations add column if not exists statements text[];
alter table supabase_migrations.schema_migrations add column if not exists name text;
"""


@dataclass(frozen=True)
class Migration:
    version: str
    name: str
    path: Path

    def statements(self) -> list[str]:
        return split_statements(self.path.read_text(encoding="utf-8"))


def load_migrations(supabase_dir: Path | None = None) -> list[Migration]:
    """The migration files of ``supabase_dir/migrations``, in the order they apply."""
    folder = (supabase_dir or DEFAULT_SUPABASE_DIR) / "migrations"
    if not folder.is_dir():
        raise MigrationError(
            f"no migrations folder at {folder} (fix: set PARLEY_DB_SUPABASE_DIR to the folder "
            "holding migrations/ and seed.sql)"
        )
    found: list[Migration] = []
    for path in sorted(folder.glob("*.sql"), key=lambda p: p.name):
        m = _FILE.match(path.name)
        if m is None:
            raise MigrationError(
                f"{path.name}: migration files must be named <timestamp>_<name>.sql "
                "(fix: rename it, e.g. with `supabase migration new <name>`)"
            )
        found.append(Migration(m.group(1), m.group(2), path))
    versions = [m.version for m in found]
    dupes = sorted({v for v in versions if versions.count(v) > 1})
    if dupes:
        raise MigrationError(f"several migration files share the version(s) {dupes}: rename one")
    return found


async def applied_versions(conn: asyncpg.Connection) -> list[str]:
    """Versions recorded in supabase_migrations.schema_migrations (empty if none)."""
    exists = await conn.fetchval(
        "select to_regclass('supabase_migrations.schema_migrations') is not null"
    )
    if not exists:
        return []
    rows = await conn.fetch("select version from supabase_migrations.schema_migrations")
    return sorted(r["version"] for r in rows)


async def is_supabase(conn: asyncpg.Connection) -> bool:
    """A Supabase database (hosted, local CLI or self-hosted) has the supabase_admin role."""
    return bool(await conn.fetchval("select to_regrole('supabase_admin') is not null"))


async def install_shim(conn: asyncpg.Connection) -> bool:
    """Install the Supabase auth shim unless this is Supabase. True if it was (re)applied."""
    if await is_supabase(conn):
        return False
    try:
        async with conn.transaction():
            await conn.execute(SHIM_SQL.read_text(encoding="utf-8"))
    except asyncpg.PostgresError as err:
        raise MigrationError(
            f"cannot install the Supabase auth shim: {err} (fix: connect as a superuser once, "
            "or create the roles anon, authenticated, service_role BYPASSRLS and schema auth "
            "yourself)"
        ) from err
    return True


@asynccontextmanager
async def migration_lock(conn: asyncpg.Connection) -> AsyncIterator[None]:
    """Hold the migration advisory lock (per database) for the block."""
    if not await conn.fetchval(f"select pg_try_advisory_lock({_LOCK})"):
        logger.info("Another process is migrating this database; waiting for it to finish")
        await conn.execute(f"select pg_advisory_lock({_LOCK})")
    try:
        yield
    finally:
        if not conn.is_closed():
            await conn.execute(f"select pg_advisory_unlock({_LOCK})")


def _excerpt(statement: str, limit: int = 300) -> str:
    text = " ".join(statement.split())
    return text if len(text) <= limit else text[:limit] + " ..."


async def _apply(conn: asyncpg.Connection, migration: Migration) -> None:
    statements = migration.statements()
    number = 0
    try:
        async with conn.transaction():
            for statement in statements:
                number += 1
                await conn.execute(statement)
            await conn.execute(
                "insert into supabase_migrations.schema_migrations (version, name, statements)"
                " values ($1, $2, $3)",
                migration.version,
                migration.name,
                statements,
            )
    except asyncpg.PostgresError as err:
        where = f"statement {number} of {len(statements)}"
        raise MigrationError(
            f"migration {migration.path.name} failed at {where}: {type(err).__name__}: {err}\n"
            f"  {_excerpt(statements[number - 1]) if number else ''}\n"
            "  (none of this migration was applied; fix the SQL and start again)"
        ) from err


async def _migrate_locked(conn: asyncpg.Connection, migrations: list[Migration]) -> list[str]:
    await install_shim(conn)
    await conn.execute(_TRACKING_DDL)
    applied = set(await applied_versions(conn))
    unknown = sorted(applied - {m.version for m in migrations})
    if unknown:
        logger.warning(
            "The database has migrations this code does not know: {} (is this code older than "
            "the database?)",
            ", ".join(unknown),
        )
    done: list[str] = []
    latest = max(applied, default="")
    for migration in migrations:
        if migration.version in applied:
            continue
        if migration.version < latest:
            logger.warning("Applying {} out of order (older than {})", migration.path.name, latest)
        started = time.monotonic()
        await _apply(conn, migration)
        logger.info(
            "Applied migration {} ({:.0f} ms)",
            migration.path.name,
            (time.monotonic() - started) * 1000,
        )
        done.append(migration.version)
    return done


async def migrate(dsn: str, *, supabase_dir: Path | None = None) -> list[str]:
    """Apply the pending migrations; returns the versions applied now ([] when up to date).

    Safe to call at every start-up and from several processes at once.
    """
    migrations = load_migrations(supabase_dir)
    conn = await connect(dsn)
    try:
        async with migration_lock(conn):
            done = await _migrate_locked(conn, migrations)
    finally:
        await conn.close()
    if done:
        logger.info("Database migrated: {} migration(s) applied", len(done))
    else:
        logger.debug("Database schema is up to date ({} migrations)", len(migrations))
    return done


async def seed(conn: asyncpg.Connection, supabase_dir: Path | None = None) -> bool:
    """Run supabase/seed.sql in one transaction. False when there is no seed file."""
    path = (supabase_dir or DEFAULT_SUPABASE_DIR) / "seed.sql"
    if not path.exists():
        return False
    try:
        async with conn.transaction():
            for statement in split_statements(path.read_text(encoding="utf-8")):
                await conn.execute(statement)
    except asyncpg.PostgresError as err:
        raise MigrationError(f"{path.name} failed: {type(err).__name__}: {err}") from err
    return True


async def reset(dsn: str, *, supabase_dir: Path | None = None, with_seed: bool = True) -> list[str]:
    """Drop everything the migrations made (all data too), re-apply them, then run seed.sql.

    Returns the versions applied. Keeps schema public's grants, extensions and Supabase's own
    schemas; on a non-Supabase database the shim's auth.users is emptied.
    """
    migrations = load_migrations(supabase_dir)
    conn = await connect(dsn)
    try:
        async with migration_lock(conn):
            logger.warning("Resetting the database: dropping all Parley tables and data")
            try:
                async with conn.transaction():
                    await conn.execute(RESET_SQL.read_text(encoding="utf-8"))
            except asyncpg.PostgresError as err:
                raise MigrationError(f"reset failed: {type(err).__name__}: {err}") from err
            done = await _migrate_locked(conn, migrations)
            if with_seed and await seed(conn, supabase_dir):
                logger.info("Seeded the database from seed.sql")
    finally:
        await conn.close()
    return done
