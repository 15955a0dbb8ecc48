"""Request and response bodies of the knowledge API (``api/routes/knowledge.py``)."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, Literal
from uuid import UUID

from pydantic import AnyHttpUrl, BaseModel, ConfigDict, Field

from pipelines.knowledge.extract import MAX_TEXT_CHARS
from pipelines.knowledge.store import RetrievedChunk

Status = Literal["pending", "processing", "ready", "failed"]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class KnowledgeBaseIn(_In):
    name: str = Field(min_length=1, max_length=200)
    description: str | None = Field(None, max_length=2000)


class KnowledgeBasePatch(_In):
    name: str | None = Field(None, min_length=1, max_length=200)
    description: str | None = Field(None, max_length=2000)


class KnowledgeBaseOut(BaseModel):
    id: UUID
    name: str
    description: str | None
    embedding_model: str
    document_count: int
    created_at: datetime
    updated_at: datetime


class KnowledgeBasePage(BaseModel):
    items: list[KnowledgeBaseOut]
    next_cursor: str | None


class TextDocumentIn(_In):
    """Pasted text."""

    title: str | None = Field(None, max_length=300)
    text: str = Field(min_length=1, max_length=MAX_TEXT_CHARS)


class UrlDocumentIn(_In):
    """A web page or document to fetch (HTML, PDF, Markdown or plain text)."""

    url: AnyHttpUrl
    title: str | None = Field(None, max_length=300)


class Progress(BaseModel):
    stage: str | None = Field(
        None, description="queued, extracting, embedding, storing or done (absent once failed)"
    )
    chunks_done: int = 0
    chunks_total: int | None = None


class DocumentOut(BaseModel):
    id: UUID
    knowledge_base_id: UUID
    title: str
    source_type: Literal["text", "url", "file"]
    source: str | None
    mime_type: str | None
    status: Status
    error: str | None
    bytes: int | None
    chunk_count: int
    progress: Progress | None
    metadata: dict[str, Any]
    created_at: datetime
    updated_at: datetime


class DocumentPage(BaseModel):
    items: list[DocumentOut]
    next_cursor: str | None


class SearchIn(_In):
    query: str = Field(min_length=1, max_length=2000)
    top_k: int = Field(5, ge=1, le=50)
    min_score: float = Field(0.0, ge=-1.0, le=1.0, description="Cosine similarity floor.")


class SearchHit(BaseModel):
    chunk_id: UUID
    document_id: UUID
    document_title: str
    ordinal: int
    content: str
    score: float
    metadata: dict[str, Any]


class SearchOut(BaseModel):
    items: list[SearchHit]


KB_COLUMNS = (
    "kb.id, kb.name, kb.description, kb.embedding_model, kb.created_at, kb.updated_at, "
    "(select count(*) from public.documents d where d.knowledge_base_id = kb.id "
    "and d.org_id = kb.org_id) as document_count"
)
DOC_COLUMNS = (
    "id, knowledge_base_id, title, source_type, source, mime_type, status, error, bytes, "
    "chunk_count, metadata::text as metadata, created_at, updated_at"
)


def kb_out(row: Any) -> KnowledgeBaseOut:
    return KnowledgeBaseOut.model_validate(dict(row))


def doc_out(row: Any) -> DocumentOut:
    data = dict(row)
    meta: dict[str, Any] = json.loads(data.pop("metadata"))
    progress = meta.pop("progress", None)
    meta.pop("ingest_starts", None)  # the job's bookkeeping, not the document's
    return DocumentOut(
        **data, metadata=meta, progress=Progress.model_validate(progress) if progress else None
    )


def hit_out(chunk: RetrievedChunk) -> SearchHit:
    return SearchHit(
        chunk_id=chunk.id,
        document_id=chunk.document_id,
        document_title=chunk.document_title,
        ordinal=chunk.ordinal,
        content=chunk.content,
        score=round(chunk.score, 4),
        metadata=chunk.metadata,
    )
