"""Which database a process uses, and opening it at start-up (URL → migrate → pool)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
from loguru import logger

from parley.db.embedded import embedded_dir, ensure_embedded
from parley.db.migrate import migrate
from parley.db.pool import create_pool, normalize_dsn, redact_dsn
from parley.db.settings import DatabaseSettings
from parley.settings import Settings


async def database_url(
    settings: Settings | None = None, *, db_settings: DatabaseSettings | None = None
) -> str:
    """``DATABASE_URL`` when set; otherwise the embedded Postgres under
    ``settings.data_dir / "pg"``, started once per process (later calls return at once)."""
    db = db_settings or DatabaseSettings()
    if db.url:
        return normalize_dsn(db.url)
    settings = settings or Settings()
    return await ensure_embedded(db.embedded_dir or embedded_dir(settings.data_dir))


def describe_database(
    settings: Settings | None = None, *, db_settings: DatabaseSettings | None = None
) -> str:
    """A human description of the target, without starting anything (for prompts and logs)."""
    db = db_settings or DatabaseSettings()
    if db.url:
        return redact_dsn(normalize_dsn(db.url))
    settings = settings or Settings()
    return f"the embedded Postgres in {db.embedded_dir or embedded_dir(settings.data_dir)}"


@asynccontextmanager
async def open_database(
    settings: Settings | None = None,
    *,
    db_settings: DatabaseSettings | None = None,
    auto_migrate: bool | None = None,
) -> AsyncIterator[asyncpg.Pool]:
    """Start-up in one step: resolve the URL (starting the embedded server if needed), apply
    pending migrations (unless disabled), and yield a service-path pool; closed on exit.

    For a FastAPI lifespan: ``async with open_database(settings) as pool: yield {...}``.
    """
    db = db_settings or DatabaseSettings()
    url = await database_url(settings, db_settings=db)
    if db.auto_migrate if auto_migrate is None else auto_migrate:
        await migrate(url, supabase_dir=db.supabase_dir)
    pool = await create_pool(url, min_size=db.pool_min_size, max_size=db.pool_max_size)
    logger.info("Database ready: {}", describe_database(settings, db_settings=db))
    try:
        yield pool
    finally:
        await pool.close()
