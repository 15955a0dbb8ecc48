"""Calls (read-only here: the voice workers write them): list with filters, detail, the
transcript with per-turn latencies, and the post-call analysis."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from api import pagination
from api.deps import Caller, Db
from api.errors import ApiError, not_found
from api.schemas_common import (
    COMMON_ERRORS,
    IsoDatetime,
    error_responses,
    utc,
)

router = APIRouter(prefix="/v1/calls", tags=["calls"], responses=COMMON_ERRORS)

Status = Literal["created", "ringing", "in_progress", "completed", "failed", "no_answer"]
Direction = Literal["inbound", "outbound", "web"]


class CallOut(BaseModel):
    id: UUID
    agent_id: UUID | None = Field(description="Null once the agent is deleted.")
    contact_id: UUID | None = Field(description="Null for web calls or deleted contacts.")
    direction: Direction
    status: Status
    end_reason: str | None
    room_name: str | None
    from_number: str | None
    to_number: str | None
    started_at: datetime | None
    answered_at: datetime | None
    ended_at: datetime | None
    duration_s: float | None = Field(description="ended_at - started_at, once ended.")
    metadata: dict[str, Any]
    created_at: datetime
    updated_at: datetime


class CallPage(BaseModel):
    items: list[CallOut]
    next_cursor: str | None


class TurnOut(BaseModel):
    idx: int
    role: Literal["user", "assistant", "tool"]
    text: str
    started_at: datetime | None
    ended_at: datetime | None
    interrupted: bool
    stt_final_ms: int | None = Field(description="End of speech → final transcript.")
    llm_first_token_ms: int | None
    tts_first_audio_ms: int | None
    voice_to_voice_ms: int | None = Field(description="User stops → agent audio starts.")
    knowledge_chunk_ids: list[UUID]


class TranscriptOut(BaseModel):
    call_id: UUID
    turns: list[TurnOut]


class AnalysisOut(BaseModel):
    call_id: UUID
    summary: str | None
    sentiment: Literal["positive", "neutral", "negative", "mixed"] | None
    outcome: str | None
    data: dict[str, Any]
    created_at: datetime
    updated_at: datetime


_COLS = (
    "id, agent_id, contact_id, direction, status, end_reason, room_name, from_number, "
    "to_number, started_at, answered_at, ended_at, "
    "extract(epoch from ended_at - started_at)::float8 as duration_s, "
    "metadata::text as metadata, created_at, updated_at"
)


def _out(row: Any) -> CallOut:
    return CallOut(**{**dict(row), "metadata": json.loads(row["metadata"])})


@router.get("", response_model=CallPage, responses=error_responses(400))
async def list_calls(
    who: Caller,
    db: Db,
    status: Annotated[list[Status] | None, Query(description="Any of these (repeat).")] = None,
    direction: Direction | None = None,
    agent_id: UUID | None = None,
    contact_id: UUID | None = None,
    created_after: Annotated[IsoDatetime | None, Query(description="Inclusive; ISO 8601.")] = None,
    created_before: Annotated[IsoDatetime | None, Query(description="Exclusive; ISO 8601.")] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> CallPage:
    """Newest first; pass ``next_cursor`` back as ``cursor`` (with the same filters)."""
    args: list[Any] = [who.org_id, limit + 1]
    where = ["org_id = $1"]

    def add(cond: str, value: Any) -> None:
        """Bind ``value``; ``?`` in ``cond`` becomes its $n."""
        args.append(value)
        where.append(cond.replace("?", f"${len(args)}"))

    if status:
        add("status = any(?::text[])", list(status))
    if direction:
        add("direction = ?", direction)
    if agent_id:
        add("agent_id = ?", agent_id)
    if contact_id:
        add("contact_id = ?", contact_id)
    if created_after:
        add("created_at >= ?", utc(created_after, "query.created_after"))
    if created_before:
        add("created_at < ?", utc(created_before, "query.created_before"))
    if cond := pagination.after(cursor, args):
        where.append(cond)
    rows = await db.fetch(
        f"select {_COLS} from public.calls where {' and '.join(where)} "
        "order by created_at desc, id desc limit $2",
        *args,
    )
    return CallPage(
        items=[_out(r) for r in rows[:limit]], next_cursor=pagination.next_cursor(rows, limit)
    )


@router.get("/{call_id}", response_model=CallOut, responses=error_responses(404))
async def get_call(call_id: UUID, who: Caller, db: Db) -> CallOut:
    row = await db.fetchrow(
        f"select {_COLS} from public.calls where id = $1 and org_id = $2", call_id, who.org_id
    )
    if row is None:
        raise not_found("call")
    return _out(row)


@router.get("/{call_id}/transcript", response_model=TranscriptOut, responses=error_responses(404))
async def get_transcript(call_id: UUID, who: Caller, db: Db) -> TranscriptOut:
    """The turns in order (``idx``); empty while the call has not started."""
    exists = await db.fetchval(
        "select exists (select 1 from public.calls where id = $1 and org_id = $2)",
        call_id,
        who.org_id,
    )
    if not exists:
        raise not_found("call")
    rows = await db.fetch(
        "select idx, role, text, started_at, ended_at, interrupted, stt_final_ms, "
        "llm_first_token_ms, tts_first_audio_ms, voice_to_voice_ms, knowledge_chunk_ids "
        "from public.call_turns where call_id = $1 and org_id = $2 order by idx",
        call_id,
        who.org_id,
    )
    return TranscriptOut(call_id=call_id, turns=[TurnOut(**dict(r)) for r in rows])


@router.get("/{call_id}/analysis", response_model=AnalysisOut, responses=error_responses(404))
async def get_analysis(call_id: UUID, who: Caller, db: Db) -> AnalysisOut:
    """404 ``not_found`` both for an unknown call and for one not analysed yet (the analysis
    is written after the call ends); the message says which."""
    row = await db.fetchrow(
        "select c.id as known, a.call_id, a.summary, a.sentiment, a.outcome, a.data::text as data,"
        " a.created_at, a.updated_at from public.calls c left join public.call_analysis a"
        " on a.call_id = c.id and a.org_id = c.org_id where c.id = $1 and c.org_id = $2",
        call_id,
        who.org_id,
    )
    if row is None:
        raise not_found("call")
    if row["call_id"] is None:
        raise ApiError(404, "not_found", "this call has no analysis yet (written after it ends)")
    values = {k: row[k] for k in AnalysisOut.model_fields if k != "data"}
    return AnalysisOut(**values, data=json.loads(row["data"]))
