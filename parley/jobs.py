"""One durable job queue for background work, on Postgres through pgqueuer.

* **Enqueue in the caller's transaction** (:func:`enqueue`): a job becomes visible when the row
  it works on commits, and a rollback enqueues nothing. Requests running as an API role (RLS)
  enqueue through the service path: API roles have no rights on the queue's tables.
* **Consume everywhere** (:class:`JobQueue`): every API process runs one consumer; processes
  share the work (``FOR UPDATE SKIP LOCKED``). Each entrypoint runs at most ``concurrency``
  jobs at once in a process.
* **Retries**: a handler's exception re-queues its job with exponential backoff until
  ``max_attempts``; a job whose process died (no heartbeat for ``heartbeat_secs``) is picked
  up again by another process; a stopping process hands its unfinished jobs back at once.

Typed: an :class:`Entrypoint` names a job and its pydantic payload; handlers receive the
parsed payload and a :class:`JobInfo`. The tables come from the project's migrations
(``supabase/migrations/20261204000400_jobs.sql``), generated from :data:`DB_SETTINGS`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Generic, TypeVar, cast

import asyncpg
from loguru import logger
from pgqueuer.adapters.drivers.asyncpg import AsyncpgDriver, AsyncpgPoolDriver
from pgqueuer.adapters.persistence.qb import (
    QueryBuilderEnvironment,
    QueryQueueBuilder,
    QuerySchedulerBuilder,
)
from pgqueuer.adapters.persistence.queries import Queries
from pgqueuer.core.executors import AbstractEntrypointExecutor, EntrypointExecutorParameters
from pgqueuer.core.qm import QueueManager
from pgqueuer.domain.errors import RetryRequested
from pgqueuer.domain.models import Context, Job
from pgqueuer.domain.settings import DBSettings, Durability
from pgqueuer.domain.types import Channel
from pydantic import BaseModel, Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

# Every name spelled out: pgqueuer also reads PGQUEUER_* and bare names (QUEUE_TABLE, CHANNEL)
# from the environment, which must not move the queue away from what the migration created.
DB_SETTINGS = DBSettings(
    prefix="",
    db_schema="private",
    channel=Channel("ch_pgqueuer"),
    function="fn_pgqueuer_changed",
    statistics_table="pgqueuer_statistics",
    queue_status_type="pgqueuer_status",
    queue_table="pgqueuer",
    queue_table_log="pgqueuer_log",
    trigger="tg_pgqueuer_changed",
    schedules_table="pgqueuer_schedules",
    durability=Durability.durable,
)

M = TypeVar("M", bound=BaseModel)


class JobSettings(BaseSettings):
    """``PARLEY_JOBS_*``: the consumer every API process runs."""

    model_config = SettingsConfigDict(env_prefix="PARLEY_JOBS_", extra="ignore")

    heartbeat_secs: float = Field(
        30.0, gt=0, description="A picked job silent this long belongs to a dead process."
    )
    poll_secs: float = Field(
        5.0, gt=0, description="Look for work this often even without a notification."
    )
    stop_grace_secs: float = Field(
        10.0,
        ge=0,
        description="On shutdown, running jobs get this long before they are handed back.",
    )
    retry_base_secs: float = Field(1.0, gt=0, description="First retry delay (then doubled).")
    retry_max_secs: float = Field(300.0, gt=0)
    log_retention_days: int = Field(7, ge=1, description="Days of job history kept.")


@dataclass(frozen=True)
class Entrypoint(Generic[M]):
    """A kind of job: its name in the queue and the model of its payload."""

    name: str
    payload: type[M]


@dataclass(frozen=True)
class JobInfo:
    id: int
    attempt: int  # 1 for the first run
    max_attempts: int

    @property
    def last_attempt(self) -> bool:
        return self.attempt >= self.max_attempts


Handler = Callable[[M, JobInfo], Awaitable[None]]


def install_sql() -> str:
    """pgqueuer's DDL for :data:`DB_SETTINGS` (what the migration holds, for tests and upgrades)."""
    return QueryBuilderEnvironment(DB_SETTINGS).build_install_query(create_schema=False)


def _queries(driver: AsyncpgDriver | AsyncpgPoolDriver) -> Queries:
    return Queries(
        driver,
        qbe=QueryBuilderEnvironment(DB_SETTINGS),
        qbq=QueryQueueBuilder(DB_SETTINGS),
        qbs=QuerySchedulerBuilder(DB_SETTINGS),
    )


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


@contextlib.asynccontextmanager
async def service_path(conn: asyncpg.Connection) -> AsyncIterator[asyncpg.Connection]:
    """Inside a transaction opened by ``parley.db.as_user`` (role ``authenticated``), run the
    block as the connection's own role (service path), then switch back to the caller's role.
    A no-op on a service-path transaction. If the block fails the role is left as is: the
    transaction is aborted anyway."""
    current, session = await conn.fetchrow("select current_user::text, session_user::text")
    if current == session:
        yield conn
        return
    await conn.execute("set local role none")
    yield conn
    await conn.execute(f"set local role {_ident(current)}")


async def enqueue(
    conn: asyncpg.Connection,
    entrypoint: Entrypoint[M],
    payload: M,
    *,
    dedupe_key: str | None = None,
    priority: int = 0,
    delay: timedelta | None = None,
) -> int | None:
    """Add a job in ``conn``'s current transaction (so it exists only if that commits).

    Higher ``priority`` runs first. With ``dedupe_key``, a job with the same key already
    queued or running means nothing is added and None is returned."""
    if not conn.is_in_transaction():
        raise RuntimeError("enqueue() belongs in the transaction that writes the job's rows")
    async with service_path(conn):
        ids = await _queries(AsyncpgDriver(conn)).enqueue(
            entrypoint.name,
            payload.model_dump_json().encode(),
            priority,
            delay,
            dedupe_key,
            on_conflict="skip",
        )
    return int(ids[0]) if ids and ids[0] is not None else None


class _Executor(AbstractEntrypointExecutor):
    """Runs one entrypoint's handler: payload parsing, per-process concurrency, retries with
    backoff, and handing the job back when the process stops."""

    def __init__(
        self,
        queue: JobQueue,
        entrypoint: Entrypoint[Any],
        handler: Handler[Any],
        concurrency: int,
        max_attempts: int,
    ) -> None:
        # concurrency_limit=0: pgqueuer's own limit is fleet-wide; ours is per process.
        super().__init__(EntrypointExecutorParameters(concurrency_limit=0, func=cast(Any, handler)))
        self.queue, self.entrypoint, self.handler = queue, entrypoint, handler
        self.concurrency, self.max_attempts = concurrency, max_attempts
        self.slots = asyncio.Semaphore(concurrency)

    async def _run(self, payload: BaseModel, info: JobInfo) -> None:
        async with self.slots:
            await self.handler(payload, info)

    async def execute(self, job: Job, context: Context) -> None:
        name = self.entrypoint.name
        try:
            payload = self.entrypoint.payload.model_validate_json(job.payload or b"{}")
        except ValidationError as err:  # retrying cannot help: drop it, loudly
            logger.error(f"jobs: {name} job {job.id} has an invalid payload, dropped: {err}")
            return
        info = JobInfo(int(job.id), job.attempts + 1, self.max_attempts)
        work = asyncio.create_task(self._run(payload, info), name=f"job-{name}-{job.id}")
        stopping = asyncio.create_task(self.queue.stopping.wait())
        try:
            await asyncio.wait({work, stopping}, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            pass  # cancelled from outside: like stopping, the job is handed back below
        finally:
            stopping.cancel()
        if not work.done():
            work.cancel()
            await asyncio.wait({work})
            logger.info(f"jobs: {name} job {job.id} handed back (this process is stopping)")
            raise RetryRequested(timedelta(0), "the process stopped")
        failure = None if work.cancelled() else work.exception()
        if failure is None:
            return
        if isinstance(failure, RetryRequested):
            raise failure
        if info.last_attempt:
            logger.opt(exception=failure).error(
                f"jobs: {name} job {job.id} failed on its last attempt ({info.attempt})"
            )
            raise failure
        settings = self.queue.settings
        delay = min(settings.retry_base_secs * 2 ** (info.attempt - 1), settings.retry_max_secs)
        logger.warning(
            f"jobs: {name} job {job.id} attempt {info.attempt} failed "
            f"({type(failure).__name__}: {failure}); retrying in {delay:g} s"
        )
        raise RetryRequested(timedelta(seconds=delay), type(failure).__name__) from failure


class JobQueue:
    """This process's consumer: register entrypoints, then :meth:`start`; :meth:`close` stops
    taking jobs, lets running ones finish for ``stop_grace_secs`` and hands the rest back."""

    def __init__(self, pool: asyncpg.Pool, settings: JobSettings | None = None) -> None:
        self.pool, self.settings = pool, settings or JobSettings()
        self.stopping = asyncio.Event()
        self._executors: dict[str, _Executor] = {}
        self._manager: QueueManager | None = None
        self._task: asyncio.Task[None] | None = None
        self._closed = asyncio.Event()

    def register(
        self,
        entrypoint: Entrypoint[M],
        handler: Handler[M],
        *,
        concurrency: int = 1,
        max_attempts: int = 5,
    ) -> None:
        """Run ``handler`` for ``entrypoint``'s jobs, at most ``concurrency`` at once here."""
        if self._task is not None:
            raise RuntimeError("register every entrypoint before JobQueue.start()")
        if entrypoint.name in self._executors:
            raise ValueError(f"job entrypoint {entrypoint.name!r} is already registered")
        if concurrency < 1 or max_attempts < 1:
            raise ValueError("concurrency and max_attempts must be at least 1")
        self._executors[entrypoint.name] = _Executor(
            self, entrypoint, handler, concurrency, max_attempts
        )

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def start(self) -> None:
        if self._task is None and self._executors:
            self._task = asyncio.create_task(self._supervise(), name="jobs-consumer")

    async def close(self) -> None:
        if self._task is None or self._task.done():
            return
        self._closed.set()
        if self._manager is not None:
            self._manager.shutdown.set()  # no new jobs; running ones go on for the grace period
        _, pending = await asyncio.wait({self._task}, timeout=self.settings.stop_grace_secs)
        if pending:
            self.stopping.set()  # running handlers are cancelled and their jobs re-queued
            _, pending = await asyncio.wait({self._task}, timeout=5.0)
        if pending:  # the database is not answering: its heartbeats lapse, others take over
            self._task.cancel()
            await asyncio.wait({self._task})

    async def _supervise(self) -> None:
        # The consumer outlives database restarts: a failed run is started again shortly.
        capacity = max(2, sum(e.concurrency for e in self._executors.values()))
        while not self._closed.is_set():
            manager = QueueManager(
                _queries(AsyncpgPoolDriver(self.pool)), channel=DB_SETTINGS.channel
            )
            for name, executor in self._executors.items():
                manager.register_executor(name, executor)
            self._manager = manager
            maintenance = asyncio.create_task(self._maintain())
            try:
                await manager.run(
                    dequeue_timeout=timedelta(seconds=self.settings.poll_secs),
                    batch_size=1,
                    max_concurrent_tasks=capacity,
                    heartbeat_timeout=timedelta(seconds=self.settings.heartbeat_secs),
                )
            except Exception as err:
                logger.warning(
                    f"jobs: the consumer stopped ({type(err).__name__}: {err}); restarting"
                )
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._closed.wait(), timeout=5.0)
            finally:
                maintenance.cancel()
                await asyncio.gather(maintenance, return_exceptions=True)

    async def _maintain(self) -> None:
        # pgqueuer keeps a log row per state change and per-second statistics: keep a bounded
        # history of both.
        names = DB_SETTINGS.qualified
        while True:
            try:
                async with self.pool.acquire() as conn:
                    for table in (names.queue_table_log, names.statistics_table):
                        await conn.execute(
                            f"delete from {table} "
                            "where created < now() - make_interval(days => $1)",
                            self.settings.log_retention_days,
                        )
            except (OSError, asyncpg.PostgresError) as err:
                logger.warning(f"jobs: could not trim the job history ({err})")
            await asyncio.sleep(3600)
