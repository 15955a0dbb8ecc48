"""A voice call answered from the knowledge base: the fact exists only in an ingested document.

The caller's question is spoken by Piper; the real pipeline (VAD, Whisper, retrieval from the
embedded Postgres, Piper) runs; the scripted LLM can only answer if the retrieved text reached
its request. Both modes: per_turn (a developer message) and tool (lookup_knowledge).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import pytest_asyncio

from api.ingest import DocRef, KnowledgeSettings, Source, ingest_now
from parley.db import connect, create_pool
from parley.db.testing import db_url, migrated_template, pg_server
from pipelines.knowledge import LocalMiniLMEmbedder
from pipelines.knowledge.retrieve import LOOKUP_TOOL, PgRetriever
from tests.conftest import make_agent
from tests.conversation import converse
from tests.fakes import Script, TextReply, ToolCallReply
from tests.fakes.script import JSON, Reply, content_text

__all__ = ["db_url", "migrated_template", "pg_server"]

FACT = "4729"
DOCUMENT = (
    "Visiting Maple Grove Dental\n\n"
    "Patients park in the private car park behind the building. The barrier opens with the "
    f"clinic's parking code, which is {FACT}. Parking is free for the length of the visit.\n\n"
    "Bicycles can be left in the covered rack next to the entrance."
)


@dataclass
class KnowsOnlyWhatItIsTold(Script):
    """Says the parking code only when a system/developer/tool message of the request has it."""

    use_tool: bool = False

    def respond(self, body: JSON) -> Reply:
        messages = [m for m in body.get("messages") or [] if isinstance(m, dict)]
        told = any(
            FACT in content_text(m.get("content"))
            for m in messages
            if m.get("role") in ("system", "developer", "tool")
        )
        last = messages[-1].get("role") if messages else None
        reply: Reply
        if told:
            reply = TextReply(f"The parking code is {FACT}.")
        elif self.use_tool and last == "user":
            reply = ToolCallReply(LOOKUP_TOOL, {"query": "clinic parking code"})
        else:
            reply = TextReply("Sorry, I do not know.")
        with self._lock:
            self.requests.append(body)
            self.replies_sent.append(reply)
        return reply


@dataclass
class Knowledge:
    pool: asyncpg.Pool
    org_id: uuid.UUID
    base_id: uuid.UUID
    chunk_ids: list[str]


@pytest_asyncio.fixture
async def knowledge(db_url: str) -> AsyncIterator[Knowledge]:
    """One organization whose knowledge base holds the document, ingested the real way."""
    conn = await connect(db_url)
    try:
        org = await conn.fetchval(
            "insert into public.organizations (name) values ('Clinic') returning id"
        )
        base = await conn.fetchval(
            "insert into public.knowledge_bases (org_id, name) values ($1, 'FAQ') returning id", org
        )
        doc = await conn.fetchval(
            "insert into public.documents (org_id, knowledge_base_id, source_type, status) "
            "values ($1, $2, 'text', 'processing') returning id",
            org,
            base,
        )
    finally:
        await conn.close()
    pool = await create_pool(db_url, min_size=1, max_size=4)
    try:
        ref = DocRef(doc, org, base)
        stats = await ingest_now(
            pool, LocalMiniLMEmbedder(), ref, Source("text", text=DOCUMENT), KnowledgeSettings()
        )
        assert stats is not None and stats.chunks >= 1
        async with pool.acquire() as c:
            ids = [
                str(r["id"])
                for r in await c.fetch("select id from public.chunks where document_id = $1", doc)
            ]
        yield Knowledge(pool, org, base, ids)
    finally:
        await pool.close()


def said_digits(text: str) -> str:
    """Whisper writes numbers as digits, sometimes spaced or with separators."""
    return re.sub(r"[\s,.-]", "", text)


@pytest.mark.e2e
@pytest.mark.parametrize("mode", ["per_turn", "tool"])
async def test_answer_comes_from_the_knowledge_base(
    mode: str, knowledge: Knowledge, tmp_path: Path, transcribe: Callable[[Path], str]
) -> None:
    agent = make_agent(knowledge={"base_ids": [str(knowledge.base_id)], "mode": mode})
    retriever = PgRetriever(
        knowledge.pool, knowledge.org_id, [knowledge.base_id], LocalMiniLMEmbedder()
    )
    llm = KnowsOnlyWhatItIsTold(use_tool=mode == "tool")
    result = await converse(
        agent, ["What is the parking code at the clinic?"], llm, tmp_path, retriever=retriever
    )
    # The fact reached the LLM only through retrieval, in the mode's own way.
    role = "developer" if mode == "per_turn" else "tool"
    carried: list[Any] = [
        m
        for body in llm.requests
        for m in body["messages"]
        if FACT in content_text(m.get("content"))
    ]
    assert carried and {m["role"] for m in carried} == {role}, llm.requests
    answers = [t for t in result.turns if t.role == "assistant"]
    assert [t.text for t in answers] == [f"The parking code is {FACT}."]
    assert answers[0].extra["knowledge_chunk_ids"] == knowledge.chunk_ids
    heard = transcribe(result.audio_files[-1])
    assert FACT in said_digits(heard), heard
