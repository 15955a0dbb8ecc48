"""Ingestion of one knowledge document: fetch → extract → chunk → embed → store.

CPU-bound steps (extraction, tokenising, embedding) run in threads so the event loop keeps
serving requests. Progress goes to ``documents.metadata.progress``. Chunks are written in the
same transaction that marks the document ready (and drops its stored content), so a failure or
a crash never leaves half a document. Documents reach this through the job queue
(``api/ingest_jobs.py``); :func:`ingest_now` is also what the benchmarks call directly.
"""

from __future__ import annotations

import asyncio
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

from parley.egress import EgressPolicy
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

PROGRESS_LOG_SECS = 5.0  # big documents log their progress this often (every batch is noise)
# Only for documents added before the job queue, whose content lived in a stopped process.
INTERRUPTED = "ingestion was interrupted because the server stopped; add the document again"


class KnowledgeSettings(BaseSettings):
    """``PARLEY_KNOWLEDGE_*``: ingestion limits and behaviour."""

    model_config = SettingsConfigDict(env_prefix="PARLEY_KNOWLEDGE_", extra="ignore")

    allow_private_urls: bool = Field(
        False, description="Let URL ingestion reach private/loopback addresses (tests, intranets)."
    )
    max_upload_bytes: int = Field(MAX_DOCUMENT_BYTES, ge=1, le=MAX_DOCUMENT_BYTES)
    concurrency: int = Field(
        2, ge=1, le=32, description="Documents processed at once, per process."
    )
    max_queued: int = Field(
        200, ge=1, description="Documents waiting or running per organization (then 429)."
    )
    max_queued_total: int = Field(
        5000, ge=1, description="Documents waiting or running in all (then 503)."
    )
    max_attempts: int = Field(
        5, ge=1, le=20, description="Tries of a document whose ingestion hit a transient error."
    )
    embed_batch: int = Field(32, ge=1, le=1024, description="Chunks per embedding call.")
    heartbeat_secs: float = Field(
        30.0, gt=0, description="How often documents without a job are looked for."
    )
    stale_after_secs: float = Field(
        120.0,
        gt=0,
        description="A pending document without a job, untouched this long, is re-queued.",
    )


@dataclass(frozen=True)
class DocRef:
    id: UUID
    org_id: UUID
    knowledge_base_id: UUID


@dataclass(frozen=True)
class Source:
    """What to ingest (read back from ``private.document_sources`` when queued)."""

    kind: Literal["text", "url", "file"]
    text: str | None = None
    url: str | None = None
    data: bytes | None = None
    filename: str | None = None
    content_type: str | None = None


@dataclass
class IngestStats:
    """What one ingestion did (returned by :func:`ingest_now`, used by the benchmark)."""

    chunks: int
    seconds: float


async def _set_progress(
    pool: asyncpg.Pool, ref: DocRef, stage: str, done: int, total: int | None
) -> bool:
    """Record progress; False when the document was deleted meanwhile (stop working on it)."""
    async with pool.acquire() as conn:
        done_row = await conn.execute(
            "update public.documents set metadata = jsonb_set(metadata, '{progress}', $3::jsonb) "
            "where id = $1 and org_id = $2",
            ref.id,
            ref.org_id,
            json.dumps({"stage": stage, "chunks_done": done, "chunks_total": total}),
        )
    return not done_row.endswith(" 0")


async def _extract(
    source: Source, settings: KnowledgeSettings, egress: EgressPolicy | None
) -> tuple[ExtractedDocument, int]:
    if source.kind == "url":
        assert source.url is not None
        # A tenant's URL: the operator's egress policy (its allowed ranges included).
        policy = EgressPolicy.unrestricted() if settings.allow_private_urls else egress
        fetched = await fetch_url(source.url, policy=policy)
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
    egress: EgressPolicy | None = None,
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
    doc, size = await _extract(source, settings, egress)
    title = doc.title or source.filename or source.url or "Untitled"
    chunks: list[Chunk] = await asyncio.to_thread(chunk_text, doc.text, title=doc.title)
    if not chunks:
        raise ExtractionError("the document has no text to index")
    total = len(chunks)
    if not await _set_progress(pool, ref, "embedding", 0, total):
        return None
    parts = []
    logged = time.monotonic()
    for start in range(0, total, settings.embed_batch):
        batch = [c.content for c in chunks[start : start + settings.embed_batch]]
        parts.append(await asyncio.to_thread(embedder.embed, batch))
        done = min(start + settings.embed_batch, total)
        if not await _set_progress(
            pool, ref, "embedding" if done < total else "storing", done, total
        ):
            return None
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
        await conn.execute("delete from private.document_sources where document_id = $1", ref.id)
    return IngestStats(total, time.perf_counter() - started)
