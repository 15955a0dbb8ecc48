"""The pgvector side of knowledge: which embedder makes vectors, writing chunks, nearest search.

Everything here runs on the service path (a pool from ``parley.db``, which bypasses RLS), so
every query filters by ``org_id`` itself. API requests made by signed-in users pass their own
RLS-scoped connection instead; the explicit filters then still apply.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import asyncpg
import numpy as np
from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from parley.errors import ConfigError
from pipelines.knowledge.chunk import Chunk
from pipelines.knowledge.embed import (
    EMBED_DIM,
    LOCAL_MODEL_NAME,
    Embedder,
    LocalMiniLMEmbedder,
    OpenAIEmbedder,
    Vectors,
)

#: ``hnsw.ef_search`` per query. bench/retrieval.py, 100k clustered chunks, top-5: pgvector's
#: default 40 gives recall 0.967 against exact search, 64 gives 0.993 for ~0.5 ms more (p95
#: 3.9 -> 4.6 ms), 100 gives 1.000 (p95 4.9 ms).
DEFAULT_EF_SEARCH = 64
#: ``knowledge_bases.embedding_model`` of vectors made by the bundled model (the int8 ONNX
#: export lands within rounding of the fp32 original, so both share one vector space).
LOCAL_MODEL_FAMILY = "all-MiniLM-L6-v2"


class EmbeddingSettings(BaseSettings):
    """``PARLEY_EMBEDDINGS_*``: the bundled MiniLM unless an OpenAI-compatible endpoint is set."""

    model_config = SettingsConfigDict(env_prefix="PARLEY_EMBEDDINGS_", extra="ignore")

    base_url: str | None = Field(None, description="e.g. https://api.openai.com/v1; unset = local")
    model: str | None = Field(None, description="Required with base_url.")
    api_key: str | None = None
    dimensions: int = Field(EMBED_DIM, description="Must match the chunks.embedding column.")
    send_dimensions: bool = Field(
        False, description="Ask the model for `dimensions` (OpenAI text-embedding-3-*)."
    )
    batch_size: int = Field(64, ge=1, le=2048)
    timeout_secs: float = Field(30.0, gt=0)

    @field_validator("dimensions")
    @classmethod
    def _schema_dimension(cls, v: int) -> int:
        if v != EMBED_DIM:
            raise ValueError(
                f"the knowledge store keeps {EMBED_DIM}-dimensional vectors (chunks.embedding "
                f"vector({EMBED_DIM})); choose a {EMBED_DIM}-dimensional model or one that can "
                "shorten its vectors (set PARLEY_EMBEDDINGS_SEND_DIMENSIONS=true)"
            )
        return v


def make_embedder(settings: EmbeddingSettings | None = None) -> Embedder:
    """The configured embedder. The endpoint's vector size is checked on every answer."""
    cfg = settings or EmbeddingSettings()
    if not cfg.base_url:
        return LocalMiniLMEmbedder()
    if not cfg.model:
        raise ConfigError(
            "PARLEY_EMBEDDINGS_BASE_URL is set but PARLEY_EMBEDDINGS_MODEL is not "
            "(fix: name the embedding model, e.g. text-embedding-3-small)"
        )
    return OpenAIEmbedder(
        cfg.base_url,
        cfg.api_key,
        cfg.model,
        cfg.dimensions,
        batch_size=cfg.batch_size,
        timeout=cfg.timeout_secs,
        send_dimensions=cfg.send_dimensions,
    )


def model_family(embedder: Embedder) -> str:
    """What ``knowledge_bases.embedding_model`` records for vectors from ``embedder``."""
    return LOCAL_MODEL_FAMILY if embedder.name == LOCAL_MODEL_NAME else embedder.name


def embed_query(embedder: Embedder, text: str) -> Vectors:
    """One query vector, shape ``(dim,)`` (blocking: call it with ``asyncio.to_thread``)."""
    vectors = embedder.embed([text])
    return vectors[0]


@dataclass(frozen=True)
class RetrievedChunk:
    """One search hit: the chunk, its document and its cosine similarity to the query."""

    id: UUID
    document_id: UUID
    knowledge_base_id: UUID
    document_title: str
    ordinal: int
    content: str
    score: float
    metadata: dict[str, Any]


# The inner query orders by distance with LIMIT and nothing else, so the planner can walk the
# HNSW index; the document join and the score floor apply to those few rows only.
_SEARCH = """
select c.id, c.document_id, c.knowledge_base_id, c.ordinal, c.content, c.metadata::text as meta,
       d.title, c.score
from (
  select id, document_id, knowledge_base_id, ordinal, content, metadata,
         1 - (embedding <=> $1) as score
  from public.chunks
  where org_id = $2 and knowledge_base_id = any($3::uuid[]) and embedding is not null
  order by embedding <=> $1
  limit $4
) c
join public.documents d on d.id = c.document_id and d.org_id = $2
where c.score >= $5
order by c.score desc
"""


async def search_chunks(
    conn: asyncpg.Connection,
    org_id: UUID,
    base_ids: Sequence[UUID],
    vector: Vectors,
    top_k: int,
    min_score: float = 0.0,
    *,
    ef_search: int | None = DEFAULT_EF_SEARCH,
) -> list[RetrievedChunk]:
    """The ``top_k`` chunks of ``base_ids`` nearest to ``vector`` with similarity >= min_score.

    Approximate (HNSW; ``ef_search`` candidates, None = the session's setting). The filter
    applies after the index walk, so a base holding a small share of a large table can get
    fewer than ``top_k`` hits; the planner then usually prefers the exact scan over
    ``chunks_kb_idx`` anyway, because few rows match.
    """
    args = (np.asarray(vector, dtype=np.float32), org_id, list(base_ids), top_k, min_score)
    if ef_search is None:
        rows = await conn.fetch(_SEARCH, *args)
    elif conn.is_in_transaction():
        await conn.execute(f"set local hnsw.ef_search = {int(ef_search)}")
        rows = await conn.fetch(_SEARCH, *args)
    else:
        # SET LOCAL only lasts for a transaction: a pooled connection keeps no stray setting.
        async with conn.transaction():
            await conn.execute(f"set local hnsw.ef_search = {int(ef_search)}")
            rows = await conn.fetch(_SEARCH, *args)
    return [
        RetrievedChunk(
            id=r["id"],
            document_id=r["document_id"],
            knowledge_base_id=r["knowledge_base_id"],
            document_title=r["title"],
            ordinal=r["ordinal"],
            content=r["content"],
            score=float(r["score"]),
            metadata=json.loads(r["meta"]),
        )
        for r in rows
    ]


CHUNK_COLUMNS = (
    "org_id",
    "knowledge_base_id",
    "document_id",
    "ordinal",
    "content",
    "embedding",
    "metadata",
)


async def insert_chunks(
    conn: asyncpg.Connection,
    org_id: UUID,
    knowledge_base_id: UUID,
    document_id: UUID,
    chunks: Sequence[Chunk],
    vectors: Vectors,
) -> int:
    """Write a document's chunks with COPY (one round trip for any number of rows).

    Run it inside the transaction that marks the document ready, so readers never see a
    half-written document.
    """
    if len(chunks) != len(vectors):
        raise ValueError(f"{len(chunks)} chunks but {len(vectors)} vectors")
    records = [
        (
            org_id,
            knowledge_base_id,
            document_id,
            chunk.ordinal,
            chunk.content,
            np.asarray(vec, dtype=np.float32),
            json.dumps(chunk.metadata),
        )
        for chunk, vec in zip(chunks, vectors, strict=True)
    ]
    await conn.copy_records_to_table(
        "chunks", schema_name="public", columns=list(CHUNK_COLUMNS), records=records
    )
    return len(records)
