"""Pytest fixtures: a real embedded Postgres per test session, and fresh databases per test.

One pgserver cluster starts per session (in a temp folder), the migrations are applied once to
a template database, and each test that asks for ``db_url`` gets its own copy of it (CREATE
DATABASE ... TEMPLATE, ~0.1-0.2 s), dropped afterwards. To use them from another test folder,
either list ``"parley.db.testing"`` in ``pytest_plugins`` of the top-level tests/conftest.py,
or re-export them from that folder's conftest.py (as tests/db/conftest.py does)::

    from parley.db.testing import db_pool, db_url, empty_db_url, pg_server
    __all__ = ["db_pool", "db_url", "empty_db_url", "pg_server"]

Fixtures:
  pg_server          session  EmbeddedServer: the running cluster (``.url(dbname)``)
  pg_scratch_dir     function empty folder for a test's own cluster (outside pytest's tmp)
  migrated_template  session  URL of the migrated template database (do not write to it)
  db_url             function URL of a fresh, migrated, empty database of your own
  empty_db_url       function URL of a fresh database with nothing in it (not even the shim)
  db_pool            function asyncpg pool (service path, bypasses RLS) on ``db_url``
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Coroutine, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest
import pytest_asyncio

from parley.db.embedded import start_embedded, stop_embedded
from parley.db.migrate import migrate
from parley.db.pool import connect, create_pool

T = TypeVar("T")
TEMPLATE = "parley_template"
# Seconds the session's cluster took: {"start_s": ..., "migrate_s": ...} (for reports).
TIMINGS: dict[str, float] = {}


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine on a private event loop (safe from sync fixtures under pytest-asyncio)."""
    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(coro)
    finally:
        loop.close()


def with_database(url: str, database: str) -> str:
    """The same server URL pointing at another database."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + database))


@dataclass
class EmbeddedServer:
    pgdata: Path
    admin_url: str
    timings: dict[str, float] = field(default_factory=dict)

    def url(self, database: str) -> str:
        return with_database(self.admin_url, database)

    async def create_database(self, name: str, template: str | None = None) -> str:
        conn = await connect(self.admin_url)
        try:
            suffix = f" template {template} strategy file_copy" if template else ""
            await conn.execute(f'create database "{name}"{suffix}')
        finally:
            await conn.close()
        return self.url(name)

    async def drop_database(self, name: str) -> None:
        conn = await connect(self.admin_url)
        try:
            await conn.execute(f'drop database if exists "{name}" with (force)')
        finally:
            await conn.close()


@contextmanager
def scratch_dir(prefix: str = "parley-pg-") -> Iterator[Path]:
    """A temp folder for a cluster, removed afterwards, deliberately *outside* pytest's
    basetemp: as root the server runs as the ``pgserver`` user, and any pytest session that
    starts meanwhile (another run on the same machine) resets /tmp/pytest-of-<user> to mode
    0700 and prunes old runs, which would cut a running server off from its own files."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def _name(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:12]}"


async def _tune_for_tests(url: str) -> None:
    """A throw-away cluster needs no durability: skip fsync (faster CREATE DATABASE, commits)."""
    conn = await connect(url)
    try:
        for setting in ("fsync", "synchronous_commit", "full_page_writes"):
            await conn.execute(f"alter system set {setting} = off")
        await conn.execute("select pg_reload_conf()")
    finally:
        await conn.close()


@pytest.fixture(scope="session")
def pg_server() -> Iterator[EmbeddedServer]:
    with scratch_dir() as folder:
        pgdata = folder / "data"
        started = time.monotonic()
        url = start_embedded(pgdata)
        TIMINGS["start_s"] = time.monotonic() - started
        run_sync(_tune_for_tests(url))
        try:
            yield EmbeddedServer(pgdata, url, TIMINGS)
        finally:
            stop_embedded(pgdata)


@pytest.fixture
def pg_scratch_dir() -> Iterator[Path]:
    """An empty folder for a test's own cluster (see :func:`scratch_dir`)."""
    with scratch_dir() as folder:
        yield folder


@pytest.fixture(scope="session")
def migrated_template(pg_server: EmbeddedServer) -> str:
    url = run_sync(pg_server.create_database(TEMPLATE))
    started = time.monotonic()
    run_sync(migrate(url))
    pg_server.timings["migrate_s"] = time.monotonic() - started
    return url


@pytest.fixture
def db_url(pg_server: EmbeddedServer, migrated_template: str) -> Iterator[str]:
    name = _name("test")
    url = run_sync(pg_server.create_database(name, template=TEMPLATE))
    yield url
    run_sync(pg_server.drop_database(name))


@pytest.fixture
def empty_db_url(pg_server: EmbeddedServer) -> Iterator[str]:
    name = _name("empty")
    url = run_sync(pg_server.create_database(name))
    yield url
    run_sync(pg_server.drop_database(name))


@pytest_asyncio.fixture
async def db_pool(db_url: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await create_pool(db_url, min_size=1, max_size=4)
    try:
        yield pool
    finally:
        await pool.close()
