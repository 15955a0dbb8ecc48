"""The durable job queue (parley/jobs.py) on a real migrated database: the migration holds
what the installed pgqueuer expects, jobs commit and roll back with their transaction, failures
are retried with backoff, a dead process's job is picked up again and a stopping process hands
its jobs back."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from uuid import UUID, uuid4

import asyncpg
import pgqueuer
from pydantic import BaseModel

from parley.db.migrate import load_migrations
from parley.db.pool import as_user
from parley.jobs import (
    DB_SETTINGS,
    Entrypoint,
    JobInfo,
    JobQueue,
    JobSettings,
    enqueue,
    install_sql,
)
from tests.db.conftest import Org, build_world

MIGRATION = next(m for m in load_migrations() if m.path.name == "20261204000400_jobs.sql")


class Ping(BaseModel):
    n: int


PING = Entrypoint("test.ping", Ping)


def _squash(sql: str) -> str:
    return " ".join(re.sub(r"--[^\n]*", "", sql).split())


def test_migration_holds_the_installed_pgqueuer_ddl() -> None:
    text = MIGRATION.path.read_text()
    section = text.split("-- pgqueuer:begin", 1)[1].split("-- pgqueuer:end", 1)[0]
    assert f"-- pgqueuer {pgqueuer.__version__} " in section  # the version it was made from
    assert _squash(section) == _squash(install_sql())


async def test_migrated_schema_is_what_pgqueuer_verifies(db_pool: asyncpg.Pool) -> None:
    from pgqueuer.adapters.drivers.asyncpg import AsyncpgPoolDriver
    from pgqueuer.core.qm import QueueManager

    from parley.jobs import _queries

    queries = _queries(AsyncpgPoolDriver(db_pool))
    await QueueManager(queries).verify_structure()  # raises on a missing table/column/index
    plan = await queries.plan_upgrade()
    assert list(plan.statements) == [], plan.statements  # nothing to upgrade: exactly this version
    # Out of PostgREST's reach: nothing in public, no rights for the API roles.
    async with db_pool.acquire() as conn:
        assert not await conn.fetchval("select to_regclass('public.pgqueuer')")
        for role in ("anon", "authenticated"):
            assert not await conn.fetchval(
                "select has_table_privilege($1, 'private.pgqueuer', 'select, insert')", role
            )


async def _jobs(conn: asyncpg.Connection) -> list[asyncpg.Record]:
    return await conn.fetch(
        f"select id, status, attempts, dedupe_key from {DB_SETTINGS.qualified.queue_table}"
    )


async def test_enqueue_follows_the_transaction(db_pool: asyncpg.Pool) -> None:
    async with db_pool.acquire() as conn:
        try:
            async with conn.transaction():
                assert await enqueue(conn, PING, Ping(n=1), dedupe_key="one") is not None
                raise RuntimeError("the request failed after enqueueing")
        except RuntimeError:
            pass
        assert await _jobs(conn) == []  # rolled back: no job
        async with conn.transaction():
            first = await enqueue(conn, PING, Ping(n=2), dedupe_key="two")
            again = await enqueue(conn, PING, Ping(n=2), dedupe_key="two")
        assert first is not None and again is None  # one job per key while it waits
        assert [(r["status"], r["dedupe_key"]) for r in await _jobs(conn)] == [("queued", "two")]


async def test_a_signed_in_user_enqueues_through_the_service_path(db_pool: asyncpg.Pool) -> None:
    async with db_pool.acquire() as conn:
        orgs: dict[str, Org] = await build_world(conn)
        async with as_user(conn, orgs["A"].owner) as c:
            await enqueue(c, PING, Ping(n=3))
            # The caller's role is back for the rest of its transaction.
            assert await c.fetchval("select current_user") == "authenticated"
        assert len(await _jobs(conn)) == 1


@asynccontextmanager
async def consumer(
    pool: asyncpg.Pool, handler: object, **settings: float
) -> AsyncIterator[JobQueue]:
    queue = JobQueue(pool, JobSettings(poll_secs=0.5, retry_base_secs=0.2, **settings))
    queue.register(PING, handler, concurrency=2, max_attempts=3)  # type: ignore[arg-type]
    await queue.start()
    try:
        yield queue
    finally:
        await queue.close()


async def _wait_empty(conn: asyncpg.Connection, within: float = 20) -> None:
    deadline = time.monotonic() + within
    while await _jobs(conn):
        assert time.monotonic() < deadline, await _jobs(conn)
        await asyncio.sleep(0.05)


async def test_jobs_run_and_failures_are_retried_with_backoff(db_pool: asyncpg.Pool) -> None:
    seen: list[tuple[int, int, float]] = []

    async def handler(p: Ping, info: JobInfo) -> None:
        seen.append((p.n, info.attempt, time.monotonic()))
        if p.n == 7 and not info.last_attempt:
            raise ConnectionError("the database went away")

    async with db_pool.acquire() as conn, consumer(db_pool, handler):
        async with conn.transaction():
            for n in (1, 7):
                await enqueue(conn, PING, Ping(n=n))
        await _wait_empty(conn)
    assert sorted((n, a) for n, a, _ in seen) == [(1, 1), (7, 1), (7, 2), (7, 3)]
    times = [t for n, _, t in seen if n == 7]
    assert times[1] - times[0] >= 0.2 and times[2] - times[1] >= 0.4  # doubling backoff


async def test_a_dead_process_job_is_picked_up_again(db_pool: asyncpg.Pool) -> None:
    ran: list[int] = []

    async def handler(p: Ping, info: JobInfo) -> None:
        ran.append(p.n)

    async with db_pool.acquire() as conn:
        async with conn.transaction():
            await enqueue(conn, PING, Ping(n=5))
        # What a process killed mid-job leaves: picked by someone, heartbeat gone quiet.
        await conn.execute(
            f"update {DB_SETTINGS.qualified.queue_table} set status = 'picked', "
            "queue_manager_id = $1, heartbeat = now() - interval '1 minute'",
            uuid4(),
        )
        async with consumer(db_pool, handler, heartbeat_secs=2):
            await _wait_empty(conn)
    assert ran == [5]


async def test_a_stopping_process_hands_its_jobs_back(db_pool: asyncpg.Pool) -> None:
    started = asyncio.Event()
    finished: list[UUID] = []

    async def slow(p: Ping, info: JobInfo) -> None:
        started.set()
        await asyncio.sleep(3600)

    async def quick(p: Ping, info: JobInfo) -> None:
        finished.append(uuid4())

    async with db_pool.acquire() as conn:
        async with conn.transaction():
            await enqueue(conn, PING, Ping(n=9))
        t0 = time.monotonic()
        async with consumer(db_pool, slow, stop_grace_secs=0.5):
            await asyncio.wait_for(started.wait(), 20)
        assert time.monotonic() - t0 < 20
        [job] = await _jobs(conn)
        assert job["status"] == "queued"  # not lost, not waiting for a heartbeat to lapse
        async with consumer(db_pool, quick):
            await _wait_empty(conn)
    assert len(finished) == 1
