"""Database layer: Supabase-compatible schema (supabase/), migrations, embedded Postgres,
asyncpg pools, and RLS "as a user" helpers. See parley/db/pool.py for service vs user paths."""

from parley.db.database import database_url, describe_database, open_database
from parley.db.embedded import ensure_embedded, start_embedded, stop_embedded
from parley.db.errors import (
    DatabaseError,
    DatabaseUnavailable,
    EmbeddedPostgresError,
    MigrationError,
)
from parley.db.migrate import applied_versions, install_shim, load_migrations, migrate, reset
from parley.db.pool import as_anon, as_user, connect, create_pool, redact_dsn
from parley.db.settings import DatabaseSettings

__all__ = [
    "DatabaseError",
    "DatabaseSettings",
    "DatabaseUnavailable",
    "EmbeddedPostgresError",
    "MigrationError",
    "applied_versions",
    "as_anon",
    "as_user",
    "connect",
    "create_pool",
    "database_url",
    "describe_database",
    "ensure_embedded",
    "install_shim",
    "load_migrations",
    "migrate",
    "open_database",
    "redact_dsn",
    "reset",
    "start_embedded",
    "stop_embedded",
]
