"""Knowledge documents on the job queue (``parley/jobs.py``).

Adding a document writes, in the request's transaction, the document row, its content (pasted
text or uploaded bytes in ``private.document_sources``; a URL is fetched when its turn comes)
and its job: the job exists exactly when the document does, and survives restarts. Any API
process runs the job; the claim sees a committed row. Transient errors (the database or the
network going away) are retried with backoff; a process that stops hands its jobs back; one that
dies leaves them to be picked up again. A document that keeps taking its process down fails
after ``MAX_STARTS`` starts. Per-organization limits and a priority that favours organizations
with fewer documents waiting keep one busy tenant from starving the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from uuid import UUID

import asyncpg
from loguru import logger
from pydantic import BaseModel

from api.errors import ApiError
from api.ingest import INTERRUPTED, DocRef, IngestStats, KnowledgeSettings, Source, ingest_now
from parley.egress import EgressPolicy
from parley.jobs import DB_SETTINGS, Entrypoint, JobInfo, JobQueue, enqueue, service_path
from pipelines.knowledge import Embedder, KnowledgeError

MAX_STARTS = 5
# Errors worth another try: the database or a remote server went away for a moment.
TRANSIENT = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.CannotConnectNowError,
    asyncpg.TooManyConnectionsError,
)
_JOBS = DB_SETTINGS.qualified.queue_table


class IngestJob(BaseModel):
    document_id: UUID
    org_id: UUID
    knowledge_base_id: UUID


INGEST = Entrypoint("knowledge.ingest_document", IngestJob)


def dedupe_key(document_id: UUID) -> str:
    return f"ingest:{document_id}"


class Ingestion:
    """This process's part of ingestion: admission and enqueueing for requests, the job
    handler, and a sweep for documents without a job (added before the queue existed)."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        embedder: Embedder,
        settings: KnowledgeSettings,
        egress: EgressPolicy | None = None,
    ) -> None:
        self.pool, self.embedder, self.settings = pool, embedder, settings
        self.egress = egress  # URL documents: the operator's policy (None: public only)
        self._running: dict[UUID, tuple[DocRef, asyncio.Task[IngestStats | None]]] = {}
        self._sweeper: asyncio.Task[None] | None = None

    def register(self, queue: JobQueue) -> None:
        queue.register(
            INGEST,
            self._handle,
            concurrency=self.settings.concurrency,
            max_attempts=self.settings.max_attempts,
        )

    async def start(self) -> None:
        self._sweeper = asyncio.create_task(self._sweep(), name="knowledge-sweep")

    async def close(self) -> None:
        tasks = [t for t in (self._sweeper, *(t for _, t in self._running.values())) if t]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # --- requests --------------------------------------------------------------------------

    async def admit(self, conn: asyncpg.Connection, org_id: UUID) -> int:
        """Check the limits before adding a document; returns its job's priority (lower for an
        organization with more documents waiting, so others go first)."""
        async with service_path(conn):
            row = await conn.fetchrow(
                "select (select count(*) from public.documents where org_id = $1 "
                "and status in ('pending', 'processing')) as mine, "
                f"(select count(*) from {_JOBS} where entrypoint = $2 "
                "and status in ('queued', 'picked')) as everyone",
                org_id,
                INGEST.name,
            )
        mine, everyone = int(row["mine"]), int(row["everyone"])
        if mine >= self.settings.max_queued:
            raise ApiError(
                429,
                "busy",
                f"your organization has {mine} documents waiting for ingestion; "
                "add more once some are ready",
            )
        if everyone >= self.settings.max_queued_total:
            raise ApiError(503, "busy", "too many documents are being ingested; retry in a minute")
        return -mine

    async def add(
        self, conn: asyncpg.Connection, ref: DocRef, source: Source, priority: int
    ) -> None:
        """Store the document's content and enqueue its job, in ``conn``'s transaction (the one
        that inserted the document row)."""
        async with service_path(conn):
            if source.kind != "url":
                data = source.data if source.kind == "file" else (source.text or "").encode()
                await conn.execute(
                    "insert into private.document_sources (document_id, org_id, data, filename, "
                    "content_type) values ($1, $2, $3, $4, $5)",
                    ref.id,
                    ref.org_id,
                    data,
                    source.filename,
                    source.content_type,
                )
            job = IngestJob(
                document_id=ref.id, org_id=ref.org_id, knowledge_base_id=ref.knowledge_base_id
            )
            await enqueue(conn, INGEST, job, dedupe_key=dedupe_key(ref.id), priority=priority)

    async def cancel(self, *, document_id: UUID | None = None, base_id: UUID | None = None) -> None:
        """Stop work here on a deleted document (or base). Elsewhere the work notices the
        deletion at its next progress update and stops."""
        tasks = [
            task
            for ref, task in self._running.values()
            if ref.id == document_id or ref.knowledge_base_id == base_id
        ]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # --- the job ---------------------------------------------------------------------------

    async def _handle(self, job: IngestJob, info: JobInfo) -> None:
        ref = DocRef(job.document_id, job.org_id, job.knowledge_base_id)
        source = await self._claim(ref)
        if source is None:
            return
        logger.info(f"knowledge: ingesting document {ref.id} ({source.kind}, try {info.attempt})")
        work = asyncio.create_task(
            ingest_now(self.pool, self.embedder, ref, source, self.settings, self.egress),
            name=f"ingest-{ref.id}",
        )
        self._running[ref.id] = (ref, work)
        try:
            await asyncio.wait({work})
        except asyncio.CancelledError:  # the process is stopping: the queue re-queues the job
            work.cancel()
            await asyncio.wait({work})
            raise
        finally:
            self._running.pop(ref.id, None)
        if work.cancelled():  # deleted meanwhile (cancel above)
            return
        err = work.exception()
        if err is None:
            stats = work.result()
            if stats is not None:
                logger.info(
                    f"knowledge: document {ref.id} ready: {stats.chunks} chunks in "
                    f"{stats.seconds:.2f} s"
                )
        elif isinstance(err, KnowledgeError):
            await self.fail(ref, str(err))
        elif isinstance(err, TRANSIENT) and not info.last_attempt:
            with contextlib.suppress(*TRANSIENT):  # the database may be what went away
                await self._requeued(ref, info)
            raise err  # the queue retries it with backoff
        else:  # a bug, or still failing on the last try: keep the API alive, tell the user
            logger.opt(exception=err).error(f"knowledge: document {ref.id} failed")
            with contextlib.suppress(Exception):
                await self.fail(
                    ref, f"ingestion failed unexpectedly ({type(err).__name__}); try again"
                )

    async def _claim(self, ref: DocRef) -> Source | None:
        """Mark the document processing and read what to ingest; None when there is nothing to
        do (deleted, already done) or it failed here."""
        progress = json.dumps({"stage": "extracting", "chunks_done": 0, "chunks_total": None})
        async with self.pool.acquire() as conn:
            # `processing` too: the try before this one stopped half-way.
            row = await conn.fetchrow(
                "update public.documents set status = 'processing', error = null, "
                "metadata = jsonb_set(metadata, '{progress}', $3::jsonb) || jsonb_build_object("
                "'ingest_starts', coalesce((metadata->>'ingest_starts')::int, 0) + 1) "
                "where id = $1 and org_id = $2 and status in ('pending', 'processing') "
                "returning source_type, source, (metadata->>'ingest_starts')::int as starts",
                ref.id,
                ref.org_id,
                progress,
            )
            if row is None:
                return None
            stored = await conn.fetchrow(
                "select data, filename, content_type from private.document_sources "
                "where document_id = $1",
                ref.id,
            )
        if row["starts"] > MAX_STARTS:
            await self.fail(
                ref,
                f"ingestion started {MAX_STARTS} times without finishing (the server stopped "
                "while working on it each time); add a smaller document",
            )
            return None
        if row["source_type"] == "url":
            return Source("url", url=row["source"])
        if stored is None:
            await self.fail(ref, "the document's content was not stored; add the document again")
            return None
        if row["source_type"] == "text":
            return Source("text", text=bytes(stored["data"]).decode("utf-8"))
        return Source(
            "file",
            data=bytes(stored["data"]),
            filename=stored["filename"],
            content_type=stored["content_type"],
        )

    async def _requeued(self, ref: DocRef, info: JobInfo) -> None:
        async with self.pool.acquire() as conn:
            await conn.execute(
                "update public.documents set status = 'pending', metadata = jsonb_set(metadata, "
                """'{progress}', '{"stage": "queued", "chunks_done": 0, "chunks_total": null}') """
                "where id = $1 and org_id = $2 and status = 'processing'",
                ref.id,
                ref.org_id,
            )
        logger.warning(f"knowledge: document {ref.id} will be tried again (try {info.attempt})")

    async def fail(self, ref: DocRef, message: str) -> None:
        logger.warning(f"knowledge: document {ref.id} failed: {message}")
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute(
                "update public.documents set status = 'failed', error = $3, "
                "metadata = metadata - 'progress' where id = $1 and org_id = $2",
                ref.id,
                ref.org_id,
                message[:2000],
            )
            await conn.execute(
                "delete from private.document_sources where document_id = $1", ref.id
            )

    # --- documents without a job -----------------------------------------------------------

    async def _sweep(self) -> None:
        while True:
            try:
                await self.adopt()
            except Exception as err:  # e.g. the database restarting: never let the loop die
                logger.warning(f"knowledge: sweep failed ({err}); retrying later")
            await asyncio.sleep(self.settings.heartbeat_secs)

    async def adopt(self) -> int:
        """Give documents left pending/processing without a job (added by a version before the
        queue, or whose last try could not record its failure) a job, when their content is
        still there; the others fail with :data:`INTERRUPTED`. Returns how many."""
        async with self.pool.acquire() as conn, conn.transaction():
            # SKIP LOCKED: processes sweeping at once take different documents.
            rows = await conn.fetch(
                "select d.id, d.org_id, d.knowledge_base_id, (d.source_type = 'url' or exists ("
                "select from private.document_sources s where s.document_id = d.id)) as content "
                "from public.documents d where d.status in ('pending', 'processing') "
                "and d.updated_at < now() - make_interval(secs => $1) "
                f"and not exists (select from {_JOBS} j where j.dedupe_key = 'ingest:' || d.id "
                "and j.status in ('queued', 'picked')) "
                "order by d.created_at limit 500 for update of d skip locked",
                self.settings.stale_after_secs,
            )
            lost = [r["id"] for r in rows if not r["content"]]
            for r in rows:
                if r["content"]:
                    job = IngestJob(
                        document_id=r["id"],
                        org_id=r["org_id"],
                        knowledge_base_id=r["knowledge_base_id"],
                    )
                    await enqueue(conn, INGEST, job, dedupe_key=dedupe_key(r["id"]))
            if lost:
                await conn.execute(
                    "update public.documents set status = 'failed', error = $2, "
                    "metadata = metadata - 'progress' where id = any($1::uuid[])",
                    lost,
                    INTERRUPTED,
                )
        if rows:
            logger.warning(
                f"knowledge: {len(rows) - len(lost)} document(s) without a job re-queued, "
                f"{len(lost)} without their content marked failed"
            )
        return len(rows)
