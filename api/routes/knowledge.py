"""Knowledge bases: CRUD, documents (pasted text, a URL or an uploaded file), and search.

Adding a document answers 202 at once with the document ``pending``; its ingestion is a job on
the durable queue (``api/ingest_jobs.py``), enqueued in the transaction that adds it, and the
document moves to ``processing`` and then ``ready`` or ``failed`` (with ``error``); poll
``GET .../documents/{id}`` for ``status`` and ``progress``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, FastAPI, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from loguru import logger
from pydantic import BaseModel, ValidationError
from starlette.datastructures import UploadFile

from api import pagination
from api.deps import Caller, Db, state, transaction
from api.errors import ApiError, not_found
from api.ingest import DocRef, KnowledgeSettings, Source
from api.ingest_jobs import Ingestion
from api.ingest_models import (
    DOC_COLUMNS,
    KB_COLUMNS,
    DocumentOut,
    DocumentPage,
    KnowledgeBaseIn,
    KnowledgeBaseOut,
    KnowledgeBasePage,
    KnowledgeBasePatch,
    SearchIn,
    SearchOut,
    Status,
    TextDocumentIn,
    UrlDocumentIn,
    doc_out,
    hit_out,
    kb_out,
)
from parley.egress import EgressPolicy
from pipelines.knowledge import EmbeddingError, UnsupportedContentType
from pipelines.knowledge.extract import detect_kind, format_size
from pipelines.knowledge.store import (
    EmbeddingSettings,
    embed_query,
    make_embedder,
    model_family,
    search_chunks,
)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Register ingestion on the app's job queue (``app.state.jobs``, opened with the database
    and started once every router has registered its jobs).

    ``app.state.knowledge_settings`` / ``app.state.knowledge_embedder``, when set before
    start-up, override the ``PARLEY_KNOWLEDGE_*`` / ``PARLEY_EMBEDDINGS_*`` environment.
    """
    settings = getattr(app.state, "knowledge_settings", None) or KnowledgeSettings()
    embedder = getattr(app.state, "knowledge_embedder", None) or make_embedder(EmbeddingSettings())
    egress = EgressPolicy.from_settings(app.state.parley.core)
    service = Ingestion(app.state.parley.pool, embedder, settings, egress)
    service.register(app.state.jobs)
    await service.start()
    warm_up = getattr(embedder, "warm_up", None)
    # Load the model off the event loop now, so the first search does not pay for it.
    warming = asyncio.create_task(asyncio.to_thread(warm_up)) if callable(warm_up) else None
    app.state.knowledge = service
    try:
        yield
    finally:
        if warming is not None:
            await asyncio.gather(warming, return_exceptions=True)
        await service.close()


router = APIRouter(prefix="/v1/knowledge-bases", tags=["knowledge"], lifespan=lifespan)


def _service(request: Request) -> Ingestion:
    service: Ingestion = request.app.state.knowledge
    return service


# --- knowledge bases -----------------------------------------------------------------------


@router.post("", status_code=201, response_model=KnowledgeBaseOut)
async def create_base(
    body: KnowledgeBaseIn, who: Caller, db: Db, request: Request
) -> KnowledgeBaseOut:
    row = await db.fetchrow(
        "with kb as (insert into public.knowledge_bases (org_id, name, description, "
        "embedding_model) values ($1, $2, $3, $4) returning *) "
        f"select {KB_COLUMNS} from kb",
        who.org_id,
        body.name,
        body.description,
        model_family(_service(request).embedder),
    )
    return kb_out(row)


@router.get("", response_model=KnowledgeBasePage)
async def list_bases(
    who: Caller,
    db: Db,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> KnowledgeBasePage:
    args: list[Any] = [who.org_id, limit + 1]
    where = "kb.org_id = $1"
    if cond := pagination.after(cursor, args, alias="kb"):
        where += f" and {cond}"
    rows = await db.fetch(
        f"select {KB_COLUMNS} from public.knowledge_bases kb where {where} "
        "order by kb.created_at desc, kb.id desc limit $2",
        *args,
    )
    return KnowledgeBasePage(
        items=[kb_out(r) for r in rows[:limit]], next_cursor=pagination.next_cursor(rows, limit)
    )


async def _base(db: Db, org_id: UUID, base_id: UUID) -> Any:
    row = await db.fetchrow(
        f"select {KB_COLUMNS} from public.knowledge_bases kb where kb.id = $1 and kb.org_id = $2",
        base_id,
        org_id,
    )
    if row is None:
        raise not_found("knowledge base")
    return row


@router.get("/{base_id}", response_model=KnowledgeBaseOut)
async def get_base(base_id: UUID, who: Caller, db: Db) -> KnowledgeBaseOut:
    return kb_out(await _base(db, who.org_id, base_id))


@router.patch("/{base_id}", response_model=KnowledgeBaseOut)
async def update_base(
    base_id: UUID, body: KnowledgeBasePatch, who: Caller, db: Db
) -> KnowledgeBaseOut:
    changes = body.model_dump(exclude_unset=True)
    if changes.get("name", "") is None:
        raise ApiError(422, "validation_error", "name may not be null")
    row = await db.fetchrow(
        "with kb as (update public.knowledge_bases set "
        "name = case when $3 then $4 else name end, "
        "description = case when $5 then $6 else description end "
        f"where id = $1 and org_id = $2 returning *) select {KB_COLUMNS} from kb",
        base_id,
        who.org_id,
        "name" in changes,
        changes.get("name"),
        "description" in changes,
        changes.get("description"),
    )
    if row is None:
        raise not_found("knowledge base")
    return kb_out(row)


@router.delete("/{base_id}", status_code=204)
async def delete_base(base_id: UUID, who: Caller, db: Db, request: Request) -> Response:
    done = await db.execute(
        "delete from public.knowledge_bases where id = $1 and org_id = $2", base_id, who.org_id
    )
    if done.endswith(" 0"):
        raise not_found("knowledge base")
    await _service(request).cancel(base_id=base_id)
    return Response(status_code=204)


# --- documents -----------------------------------------------------------------------------

_DOCUMENT_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "oneOf": [
                        TextDocumentIn.model_json_schema(),
                        UrlDocumentIn.model_json_schema(),
                    ]
                }
            },
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {
                        "file": {"type": "string", "format": "binary"},
                        "title": {"type": "string", "maxLength": 300},
                    },
                }
            },
        },
    }
}


def _validated(model: type[BaseModel], data: Any) -> Any:
    try:
        return model.model_validate(data)
    except ValidationError as err:
        # Same 422 shape as FastAPI's own body validation.
        raise RequestValidationError(
            [{**e, "loc": ("body", *e["loc"])} for e in err.errors()]
        ) from None


async def _json_source(request: Request) -> tuple[Source, str, str | None, str | None, int | None]:
    try:
        data = await request.json()
    except ValueError as err:
        raise ApiError(400, "bad_request", "the body is not valid JSON") from err
    if isinstance(data, dict) and "url" in data:
        u: UrlDocumentIn = _validated(UrlDocumentIn, data)
        return Source("url", url=str(u.url)), "url", u.title, str(u.url), None
    t: TextDocumentIn = _validated(TextDocumentIn, data)
    size = len(t.text.encode("utf-8"))
    return Source("text", text=t.text), "text", t.title, None, size


async def _file_source(
    request: Request, limit: int
) -> tuple[Source, str, str | None, str | None, int | None]:
    form = await request.form(max_files=1, max_fields=4)
    upload = form.get("file")
    if not isinstance(upload, UploadFile):
        raise ApiError(
            422, "validation_error", "send the document as a multipart field named 'file'"
        )
    data = await upload.read(limit + 1)
    if len(data) > limit:
        raise ApiError(
            413,
            "payload_too_large",
            f"the file is over the {format_size(limit)} limit; split it or upload its text",
        )
    if not data:
        raise ApiError(422, "validation_error", "the uploaded file is empty")
    try:
        kind = detect_kind(upload.content_type, upload.filename, data[:8])
    except UnsupportedContentType as err:
        raise ApiError(415, "unsupported_media_type", str(err)) from err
    title = form.get("title")
    name = upload.filename
    src = Source("file", data=data, filename=name, content_type=upload.content_type)
    logger.debug(f"knowledge: upload {name!r} ({kind}, {len(data)} bytes)")
    return src, "file", title if isinstance(title, str) and title else None, name, len(data)


@router.post(
    "/{base_id}/documents",
    status_code=202,
    response_model=DocumentOut,
    openapi_extra=_DOCUMENT_BODY,
    summary="Add a document: JSON {title, text} or {url}, or a multipart file upload",
)
async def add_document(base_id: UUID, who: Caller, request: Request) -> DocumentOut:
    service = _service(request)
    ctype = request.headers.get("content-type", "")
    if ctype.startswith("multipart/form-data"):
        source, kind, title, origin, size = await _file_source(
            request, service.settings.max_upload_bytes
        )
    elif ctype.startswith("application/json"):
        source, kind, title, origin, size = await _json_source(request)
    else:
        raise ApiError(
            415,
            "unsupported_media_type",
            "send application/json ({title, text} or {url}) or multipart/form-data with a file",
        )
    if title is not None and len(title) > 300:
        raise ApiError(422, "validation_error", "title is longer than 300 characters")
    # One transaction: the row, its content and its job commit together or not at all.
    async with transaction(state(request).pool, who) as db:
        priority = await service.admit(db, who.org_id)
        row = await db.fetchrow(
            "insert into public.documents (org_id, knowledge_base_id, title, source_type, source, "
            "mime_type, bytes, metadata) select $1, kb.id, $3, $4, $5, $6, $7, "
            """'{"progress": {"stage": "queued", "chunks_done": 0, "chunks_total": null}}'"""
            "::jsonb "
            "from public.knowledge_bases kb where kb.id = $2 and kb.org_id = $1 "
            f"returning {DOC_COLUMNS}",
            who.org_id,
            base_id,
            title or "",
            kind,
            origin,
            source.content_type if kind == "file" else None,
            size,
        )
        if row is None:
            raise not_found("knowledge base")
        await service.add(db, DocRef(row["id"], who.org_id, base_id), source, priority)
    return doc_out(row)


@router.get("/{base_id}/documents", response_model=DocumentPage)
async def list_documents(
    base_id: UUID,
    who: Caller,
    db: Db,
    status: Status | None = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> DocumentPage:
    await _base(db, who.org_id, base_id)
    args: list[Any] = [who.org_id, base_id, limit + 1, status]
    where = "org_id = $1 and knowledge_base_id = $2 and ($4::text is null or status = $4)"
    if cond := pagination.after(cursor, args):
        where += f" and {cond}"
    rows = await db.fetch(
        f"select {DOC_COLUMNS} from public.documents where {where} "
        "order by created_at desc, id desc limit $3",
        *args,
    )
    return DocumentPage(
        items=[doc_out(r) for r in rows[:limit]], next_cursor=pagination.next_cursor(rows, limit)
    )


@router.get("/{base_id}/documents/{document_id}", response_model=DocumentOut)
async def get_document(base_id: UUID, document_id: UUID, who: Caller, db: Db) -> DocumentOut:
    row = await db.fetchrow(
        f"select {DOC_COLUMNS} from public.documents "
        "where id = $1 and knowledge_base_id = $2 and org_id = $3",
        document_id,
        base_id,
        who.org_id,
    )
    if row is None:
        raise not_found("document")
    return doc_out(row)


@router.delete("/{base_id}/documents/{document_id}", status_code=204)
async def delete_document(
    base_id: UUID, document_id: UUID, who: Caller, db: Db, request: Request
) -> Response:
    done = await db.execute(
        "delete from public.documents where id = $1 and knowledge_base_id = $2 and org_id = $3",
        document_id,
        base_id,
        who.org_id,
    )
    if done.endswith(" 0"):
        raise not_found("document")
    await _service(request).cancel(document_id=document_id)
    return Response(status_code=204)


# --- search --------------------------------------------------------------------------------


@router.post("/{base_id}/search", response_model=SearchOut)
async def search(base_id: UUID, body: SearchIn, who: Caller, db: Db, request: Request) -> SearchOut:
    """The chunks nearest to ``query`` (cosine similarity, best first)."""
    base = await _base(db, who.org_id, base_id)
    embedder = _service(request).embedder
    if base["embedding_model"] != model_family(embedder):
        raise ApiError(
            409,
            "embedding_model_mismatch",
            f"this knowledge base holds {base['embedding_model']} vectors but the server embeds "
            f"with {model_family(embedder)}; search a base created with the current model",
        )
    try:
        vector = await asyncio.to_thread(embed_query, embedder, body.query)
    except EmbeddingError as err:
        raise ApiError(502, "embedding_failed", str(err)) from err
    hits = await search_chunks(db, who.org_id, [base_id], vector, body.top_k, body.min_score)
    return SearchOut(items=[hit_out(h) for h in hits])
