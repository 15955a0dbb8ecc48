"""Agents: CRUD over the shared AgentConfig schema, and a text chat for quick testing."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel, Field

from agents.stored import bind_secrets, stored_source
from agents.text.chat import LLMFailed, reply_once
from api import pagination
from api.deps import Caller, Db, state, transaction
from api.errors import ApiError, not_found
from parley.config import AgentConfig, parse_agent
from pipelines.knowledge.retrieve import PgRetriever
from pipelines.policy import check_stored_agent

router = APIRouter(prefix="/v1/agents", tags=["agents"])


class AgentOut(BaseModel):
    id: UUID
    config: AgentConfig
    created_at: datetime
    updated_at: datetime


class AgentPage(BaseModel):
    items: list[AgentOut]
    next_cursor: str | None


class ChatMessage(BaseModel):
    role: str = Field(pattern="^(user|assistant)$")
    content: str = Field(min_length=1, max_length=4000)


class ChatIn(BaseModel):
    message: str = Field(min_length=1, max_length=4000)
    history: list[ChatMessage] = Field(default_factory=list, max_length=50)


class ChatOut(BaseModel):
    reply: str
    tool_calls: list[dict[str, Any]]
    knowledge_chunk_ids: list[str] = Field(description="Knowledge chunks the answer drew on.")


def _out(row: Any) -> AgentOut:
    # A row that predates the current rules is a 422 naming what to fix, not a 500.
    return AgentOut(
        id=row["id"],
        config=parse_agent(json.loads(row["config"]), stored_source(row["id"])),
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


_COLS = "id, config::text as config, created_at, updated_at"


@router.post("", status_code=201, response_model=AgentOut)
async def create_agent(config: AgentConfig, who: Caller, db: Db, request: Request) -> AgentOut:
    check_stored_agent(config, state(request).core)
    row = await db.fetchrow(
        f"insert into public.agents (org_id, config) values ($1, $2::jsonb) returning {_COLS}",
        who.org_id,
        config.model_dump_json(),
    )
    return _out(row)


@router.get("", response_model=AgentPage)
async def list_agents(
    who: Caller,
    db: Db,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> AgentPage:
    args: list[Any] = [who.org_id, limit + 1]
    where = "org_id = $1"
    if who.agent_ids is not None:  # a publishable key lists only the agents it serves
        args.append(list(who.agent_ids))
        where += f" and id = any(${len(args)}::uuid[])"
    if cond := pagination.after(cursor, args):
        where += f" and {cond}"
    rows = await db.fetch(
        f"select {_COLS} from public.agents where {where} "
        "order by created_at desc, id desc limit $2",
        *args,
    )
    items = [_out(r) for r in rows[:limit]]
    return AgentPage(items=items, next_cursor=pagination.next_cursor(rows, limit))


async def load_agent_row(db: Db, org_id: UUID, agent_id: UUID) -> AgentOut:
    row = await db.fetchrow(
        f"select {_COLS} from public.agents where id = $1 and org_id = $2", agent_id, org_id
    )
    if row is None:
        raise not_found("agent")
    return _out(row)


@router.get("/{agent_id}", response_model=AgentOut)
async def get_agent(agent_id: UUID, who: Caller, db: Db) -> AgentOut:
    return await load_agent_row(db, who.org_id, agent_id)


@router.put("/{agent_id}", response_model=AgentOut)
async def replace_agent(
    agent_id: UUID, config: AgentConfig, who: Caller, db: Db, request: Request
) -> AgentOut:
    check_stored_agent(config, state(request).core)
    row = await db.fetchrow(
        f"update public.agents set config = $3::jsonb where id = $1 and org_id = $2 "
        f"returning {_COLS}",
        agent_id,
        who.org_id,
        config.model_dump_json(),
    )
    if row is None:
        raise not_found("agent")
    return _out(row)


@router.delete("/{agent_id}", status_code=204)
async def delete_agent(agent_id: UUID, who: Caller, db: Db) -> Response:
    done = await db.execute(
        "delete from public.agents where id = $1 and org_id = $2", agent_id, who.org_id
    )
    if done.endswith(" 0"):
        raise not_found("agent")
    return Response(status_code=204)


@router.post("/{agent_id}/chat", response_model=ChatOut)
async def chat(agent_id: UUID, body: ChatIn, who: Caller, request: Request) -> ChatOut:
    """Run the agent's LLM, prompt and tools on one text message (no audio).

    The agent is loaded in a short transaction: no database connection is held while the LLM
    and tools run (retrieval takes one per query), and the whole reply has one deadline."""
    st = state(request)
    async with transaction(st.pool, who) as db:
        agent = (await load_agent_row(db, who.org_id, agent_id)).config
    check_stored_agent(agent, st.core)
    async with st.pool.acquire() as conn:  # the service path: secrets have no RLS policies
        agent = await bind_secrets(conn, agent, who.org_id, st.core)
    history = [m.model_dump() for m in body.history]
    retriever = None
    if agent.knowledge is not None:
        embedder = request.app.state.knowledge.embedder
        retriever = PgRetriever(st.pool, who.org_id, agent.knowledge.base_ids, embedder)
    deadline = st.settings.chat_timeout_secs
    try:
        out = await reply_once(
            agent, st.core, body.message, history, timeout_secs=deadline, retriever=retriever
        )
    except TimeoutError as err:
        raise ApiError(
            504, "llm_timeout", f"the agent did not answer within {deadline:g} s"
        ) from err
    except LLMFailed as err:
        raise ApiError(502, "llm_failed", str(err)) from err
    return ChatOut(
        reply=out.text, tool_calls=out.tool_calls, knowledge_chunk_ids=out.knowledge_chunk_ids
    )
