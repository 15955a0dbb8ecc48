"""Background ingestion of knowledge documents: fetch → extract → chunk → embed → store.

One asyncio task per document, at most ``concurrency`` working at once; CPU-bound steps
(extraction, tokenising, embedding) run in threads so the event loop keeps serving requests.
Progress goes to ``documents.metadata.progress``. Chunks are written in the same transaction
that marks the document ready, so a failure or a crash never leaves half a document.

Crash recovery: a process holding documents touches their ``updated_at`` every
``heartbeat_secs``. Documents left pending/processing and untouched for ``stale_after_secs``
belong to a process that died: URL documents are re-queued (the URL can be fetched again, at
most ``MAX_RECOVERIES`` times), pasted text and uploads are marked failed with a message asking
for a new upload (their bytes lived only in the dead process's memory). The sweep runs at
start-up and then every ``heartbeat_secs``, so several API processes can share one database.
A graceful shutdown does the same at once for what it held (URL documents are flagged
``orphaned`` so the next sweep, in any process, re-queues them without waiting).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from dataclasses import dataclass
from typing import Any, Literal
from uuid import UUID

import asyncpg
import numpy as np
from loguru import logger
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from pipelines.knowledge import (
    Chunk,
    Embedder,
    ExtractedDocument,
    ExtractionError,
    KnowledgeError,
    chunk_text,
    extract,
    fetch_url,
)
from pipelines.knowledge.extract import MAX_DOCUMENT_BYTES
from pipelines.knowledge.store import insert_chunks, model_family

MAX_RECOVERIES = 3
PROGRESS_LOG_SECS = 5.0  # big documents log their progress this often (every batch is noise)
INTERRUPTED = "ingestion was interrupted because the server stopped; add the document again"


class KnowledgeSettings(BaseSettings):
    """``PARLEY_KNOWLEDGE_*``: ingestion limits and behaviour."""

    model_config = SettingsConfigDict(env_prefix="PARLEY_KNOWLEDGE_", extra="ignore")

    allow_private_urls: bool = Field(
        False, description="Let URL ingestion reach private/loopback addresses (tests, intranets)."
    )
    max_upload_bytes: int = Field(MAX_DOCUMENT_BYTES, ge=1, le=MAX_DOCUMENT_BYTES)
    concurrency: int = Field(2, ge=1, le=32, description="Documents processed at once.")
    max_queued: int = Field(200, ge=1, description="Documents waiting or running, per process.")
    embed_batch: int = Field(32, ge=1, le=1024, description="Chunks per embedding call.")
    heartbeat_secs: float = Field(30.0, gt=0)
    stale_after_secs: float = Field(120.0, gt=0)


@dataclass(frozen=True)
class DocRef:
    id: UUID
    org_id: UUID
    knowledge_base_id: UUID


@dataclass(frozen=True)
class Source:
    """What to ingest. Uploaded bytes stay in memory until the document is processed."""

    kind: Literal["text", "url", "file"]
    text: str | None = None
    url: str | None = None
    data: bytes | None = None
    filename: str | None = None
    content_type: str | None = None


class QueueFull(Exception):
    pass


@dataclass
class IngestStats:
    """What one ingestion did (returned by :func:`ingest_now`, used by the benchmark)."""

    chunks: int
    seconds: float


class IngestService:
    def __init__(self, pool: asyncpg.Pool, embedder: Embedder, settings: KnowledgeSettings) -> None:
        self.pool, self.embedder, self.settings = pool, embedder, settings
        self._sem = asyncio.Semaphore(settings.concurrency)
        self._tasks: dict[UUID, tuple[DocRef, asyncio.Task[None]]] = {}
        self._maintenance: asyncio.Task[None] | None = None

    # --- life cycle ------------------------------------------------------------------------

    async def start(self) -> None:
        await self.recover()
        self._maintenance = asyncio.create_task(self._maintain(), name="knowledge-maintenance")

    async def close(self) -> None:
        if self._maintenance is not None:
            self._maintenance.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._maintenance
        held = [ref for ref, _ in self._tasks.values()]
        tasks = [task for _, task in self._tasks.values()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks.clear()
        if not held:
            return
        # Say now what became of unfinished work rather than after stale_after: uploads and
        # text are lost; URLs are flagged so that any process may re-queue them at once.
        try:
            async with self.pool.acquire() as conn:
                await conn.execute(
                    "update public.documents set "
                    "status = case when source_type = 'url' then 'pending' else 'failed' end, "
                    "error = case when source_type = 'url' then null else $2 end, "
                    "metadata = case when source_type = 'url' "
                    """then metadata || '{"orphaned": true}' else metadata - 'progress' end """
                    "where id = any($1::uuid[]) and status in ('pending', 'processing')",
                    [r.id for r in held],
                    INTERRUPTED,
                )
            logger.info(f"knowledge: shut down with {len(held)} document(s) unfinished")
        except Exception as err:  # shutting down anyway; the stale sweep will catch up
            logger.warning(f"knowledge: could not record unfinished documents: {err}")

    async def _maintain(self) -> None:
        while True:
            await asyncio.sleep(self.settings.heartbeat_secs)
            try:
                if self._tasks:
                    async with self.pool.acquire() as conn:
                        # The updated_at trigger stamps now(): "still being worked on".
                        await conn.execute(
                            "update public.documents set status = status "
                            "where id = any($1::uuid[]) and status in ('pending', 'processing')",
                            list(self._tasks),
                        )
                await self.recover()
            except Exception as err:  # e.g. the database restarting: never let the loop die
                logger.warning(f"knowledge: maintenance failed ({err}); retrying later")

    async def recover(self) -> int:
        """Re-queue or fail documents orphaned by a dead process; returns how many."""
        held = list(self._tasks)
        stale = (
            "status in ('pending', 'processing') and id <> all($1::uuid[]) and ("
            "updated_at < now() - make_interval(secs => $2) "
            "or coalesce((metadata->>'orphaned')::boolean, false))"
        )
        async with self.pool.acquire() as conn, conn.transaction():
            failed = await conn.fetch(
                f"update public.documents set status = 'failed', error = $3 where {stale} "
                "and (source_type <> 'url' or coalesce((metadata->>'recoveries')::int, 0) >= $4) "
                "returning id",
                held,
                self.settings.stale_after_secs,
                INTERRUPTED,
                MAX_RECOVERIES,
            )
            # The conditional update is the claim: two processes never both re-queue one.
            requeued = await conn.fetch(
                "update public.documents set status = 'pending', error = null, "
                "metadata = (metadata - 'progress' - 'orphaned') || "
                "jsonb_build_object('recoveries', coalesce((metadata->>'recoveries')::int, 0) + 1) "
                f"where {stale} and source_type = 'url' returning id, org_id, knowledge_base_id, "
                "source",
                held,
                self.settings.stale_after_secs,
            )
        for row in requeued:
            ref = DocRef(row["id"], row["org_id"], row["knowledge_base_id"])
            self._spawn(ref, Source("url", url=row["source"]))
        if failed or requeued:
            logger.warning(
                f"knowledge: recovered interrupted ingestion: {len(requeued)} URL document(s) "
                f"re-queued, {len(failed)} document(s) marked failed"
            )
        return len(failed) + len(requeued)

    # --- queue -----------------------------------------------------------------------------

    def full(self) -> bool:
        return len(self._tasks) >= self.settings.max_queued

    def submit(self, ref: DocRef, source: Source) -> None:
        if len(self._tasks) >= self.settings.max_queued:
            raise QueueFull(f"{len(self._tasks)} documents are already being ingested")
        self._spawn(ref, source)

    def _spawn(self, ref: DocRef, source: Source) -> None:
        task = asyncio.create_task(self._run(ref, source), name=f"ingest-{ref.id}")
        self._tasks[ref.id] = (ref, task)
        task.add_done_callback(lambda _t: self._tasks.pop(ref.id, None))

    async def cancel(self, *, document_id: UUID | None = None, base_id: UUID | None = None) -> None:
        """Stop work on a deleted document (or on every document of a deleted base)."""
        tasks = [
            task
            for ref, task in self._tasks.values()
            if ref.id == document_id or ref.knowledge_base_id == base_id
        ]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _run(self, ref: DocRef, source: Source) -> None:
        async with self._sem:
            try:
                if not await self._claim(ref):
                    return
                logger.info(f"knowledge: ingesting document {ref.id} ({source.kind})")
                stats = await ingest_now(self.pool, self.embedder, ref, source, self.settings)
            except asyncio.CancelledError:
                raise
            except KnowledgeError as err:
                await self.fail(ref, str(err))
            except Exception as err:  # a bug or an outage: keep the API alive, tell the user
                logger.opt(exception=err).error(f"knowledge: document {ref.id} failed")
                with contextlib.suppress(Exception):  # the database may be what failed
                    await self.fail(
                        ref, f"ingestion failed unexpectedly ({type(err).__name__}); try again"
                    )
            else:
                if stats is not None:
                    logger.info(
                        f"knowledge: document {ref.id} ready: {stats.chunks} chunks in "
                        f"{stats.seconds:.2f} s"
                    )

    async def _claim(self, ref: DocRef) -> bool:
        # The request that created the row commits after this task may have started: wait for
        # the row briefly; if it never appears, the request rolled back or the row was deleted.
        for _ in range(100):
            async with self.pool.acquire() as conn:
                status = await conn.fetchval(
                    "update public.documents set status = 'processing', error = null, "
                    "metadata = jsonb_set(metadata, '{progress}', $3::jsonb) "
                    "where id = $1 and org_id = $2 and status = 'pending' returning status",
                    ref.id,
                    ref.org_id,
                    json.dumps({"stage": "extracting", "chunks_done": 0, "chunks_total": None}),
                )
                if status is not None:
                    return True
                exists = await conn.fetchval(
                    "select true from public.documents where id = $1 and org_id = $2",
                    ref.id,
                    ref.org_id,
                )
            if exists:
                return False  # someone else has it, or it already finished
            await asyncio.sleep(0.02)
        return False

    async def fail(self, ref: DocRef, message: str) -> None:
        logger.warning(f"knowledge: document {ref.id} failed: {message}")
        async with self.pool.acquire() as conn:
            await conn.execute(
                "update public.documents set status = 'failed', error = $3, "
                "metadata = metadata - 'progress' where id = $1 and org_id = $2",
                ref.id,
                ref.org_id,
                message[:2000],
            )


async def _set_progress(
    pool: asyncpg.Pool, ref: DocRef, stage: str, done: int, total: int | None
) -> None:
    async with pool.acquire() as conn:
        await conn.execute(
            "update public.documents set metadata = jsonb_set(metadata, '{progress}', $3::jsonb) "
            "where id = $1 and org_id = $2",
            ref.id,
            ref.org_id,
            json.dumps({"stage": stage, "chunks_done": done, "chunks_total": total}),
        )


async def _extract(source: Source, settings: KnowledgeSettings) -> tuple[ExtractedDocument, int]:
    if source.kind == "url":
        assert source.url is not None
        fetched = await fetch_url(source.url, allow_private=settings.allow_private_urls)
        doc = await asyncio.to_thread(
            extract, fetched.data, content_type=fetched.content_type, filename=fetched.filename
        )
        return doc, len(fetched.data)
    if source.kind == "text":
        data = (source.text or "").encode("utf-8")
        doc = await asyncio.to_thread(extract, data, content_type="text/plain; charset=utf-8")
        return doc, len(data)
    data = source.data or b""
    doc = await asyncio.to_thread(
        extract, data, content_type=source.content_type, filename=source.filename
    )
    return doc, len(data)


async def _base_model(pool: asyncpg.Pool, ref: DocRef) -> str | None:
    async with pool.acquire() as conn:
        model: str | None = await conn.fetchval(
            "select embedding_model from public.knowledge_bases where id = $1 and org_id = $2",
            ref.knowledge_base_id,
            ref.org_id,
        )
    return model


async def ingest_now(
    pool: asyncpg.Pool,
    embedder: Embedder,
    ref: DocRef,
    source: Source,
    settings: KnowledgeSettings,
) -> IngestStats | None:
    """Process one document whose row exists (status ``processing``) and mark it ready.

    Returns None when the document (or its base) was deleted meanwhile. Raises
    ``KnowledgeError`` subclasses with a message meant for the user.
    """
    started = time.perf_counter()
    family = model_family(embedder)
    base_model = await _base_model(pool, ref)
    if base_model is None:
        return None
    if base_model != family:
        raise KnowledgeError(
            f"this knowledge base holds {base_model} vectors but the server embeds with "
            f"{family}; create a new knowledge base (or configure {base_model} again)"
        )
    doc, size = await _extract(source, settings)
    title = doc.title or source.filename or source.url or "Untitled"
    chunks: list[Chunk] = await asyncio.to_thread(chunk_text, doc.text, title=doc.title)
    if not chunks:
        raise ExtractionError("the document has no text to index")
    total = len(chunks)
    await _set_progress(pool, ref, "embedding", 0, total)
    parts = []
    logged = time.monotonic()
    for start in range(0, total, settings.embed_batch):
        batch = [c.content for c in chunks[start : start + settings.embed_batch]]
        parts.append(await asyncio.to_thread(embedder.embed, batch))
        done = min(start + settings.embed_batch, total)
        await _set_progress(pool, ref, "embedding" if done < total else "storing", done, total)
        if time.monotonic() - logged > PROGRESS_LOG_SECS or done == total:
            logged = time.monotonic()
            logger.info(f"knowledge: document {ref.id}: embedded {done}/{total} chunks")
    vectors = np.concatenate(parts)
    meta: dict[str, Any] = {**doc.metadata, "content_type": doc.content_type}
    async with pool.acquire() as conn, conn.transaction():
        alive = await conn.fetchval(
            "select true from public.documents where id = $1 and org_id = $2 for update",
            ref.id,
            ref.org_id,
        )
        if not alive:
            return None
        # A re-queued document may have been half-way through a COPY elsewhere; start clean.
        await conn.execute("delete from public.chunks where document_id = $1", ref.id)
        await insert_chunks(conn, ref.org_id, ref.knowledge_base_id, ref.id, chunks, vectors)
        await conn.execute(
            "update public.documents set status = 'ready', error = null, chunk_count = $3, "
            "title = case when title = '' then $4 else title end, mime_type = $5, bytes = $6, "
            "metadata = (metadata || $7::jsonb) || jsonb_build_object('progress', $8::jsonb) "
            "where id = $1 and org_id = $2",
            ref.id,
            ref.org_id,
            total,
            title[:300],
            doc.content_type,
            size,
            json.dumps(meta),
            json.dumps({"stage": "done", "chunks_done": total, "chunks_total": total}),
        )
    return IngestStats(total, time.perf_counter() - started)
