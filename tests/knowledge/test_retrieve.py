"""Knowledge in calls: the pgvector retriever (embedded Postgres), the per-turn processor with
frames (knowledge message in, replaced each turn, timeout, audio never stalls), the lookup
tool, and chunk ids reaching the transcript."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, cast

import asyncpg
import pytest
import pytest_asyncio
from pipecat.adapters.llm.schemas.tools_schema import ToolsSchema
from pipecat.frames.frames import (
    Frame,
    InputAudioRawFrame,
    InterruptionFrame,
    LLMContextFrame,
    UserStartedSpeakingFrame,
)
from pipecat.pipeline.pipeline import Pipeline
from pipecat.processors.aggregators.llm_context import LLMContext
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
from pipecat.tests.utils import SleepFrame, run_test

from parley.config import AgentConfig, KnowledgeChoice
from parley.db import connect, create_pool
from parley.db.testing import db_url, migrated_template, pg_server
from pipelines.knowledge import LocalMiniLMEmbedder, RetrievedChunk, chunk_text, insert_chunks
from pipelines.knowledge.retrieve import (
    KNOWLEDGE_HEADER,
    LOOKUP_TOOL,
    KnowledgeRetrieval,
    PgRetriever,
    install_knowledge,
    lookup_handler,
    turn_query,
)
from pipelines.tools import tools_schema
from pipelines.transcript import LatencyObserver, TranscriptRecorder

__all__ = ["db_url", "migrated_template", "pg_server"]

KB = KnowledgeChoice(base_ids=[uuid.uuid4()], top_k=3, min_score=0.2)


def chunk(text: str, score: float = 0.8, title: str = "Clinic") -> RetrievedChunk:
    return RetrievedChunk(uuid.uuid4(), uuid.uuid4(), uuid.uuid4(), title, 0, text, score, {})


@dataclass
class FakeRetriever:
    chunks: list[RetrievedChunk]
    delay: float = 0.0
    queries: list[str] = field(default_factory=list)
    finished: int = 0

    async def warm_up(self) -> None:
        pass

    async def search(self, query: str, *, top_k: int, min_score: float) -> list[RetrievedChunk]:
        self.queries.append(query)
        await asyncio.sleep(self.delay)
        self.finished += 1
        return [c for c in self.chunks if c.score >= min_score][:top_k]


def messages(context: LLMContext) -> list[dict[str, Any]]:
    return [dict(m) for m in context.get_messages() if isinstance(m, dict)]


def knowledge_messages(context: LLMContext) -> list[dict[str, Any]]:
    return [m for m in messages(context) if str(m["content"]).startswith(KNOWLEDGE_HEADER)]


class Stamp(FrameProcessor):
    """Notes when each frame passes (to show what overtook what)."""

    def __init__(self) -> None:
        super().__init__()
        self.times: list[tuple[str, float]] = []

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        self.times.append((type(frame).__name__, time.monotonic()))
        await self.push_frame(frame, direction)


def audio() -> InputAudioRawFrame:
    return InputAudioRawFrame(audio=b"\0" * 640, sample_rate=16000, num_channels=1)


# --- pgvector retriever --------------------------------------------------------------------


async def add_document(
    conn: asyncpg.Connection, org: uuid.UUID, base: uuid.UUID, title: str, text: str
) -> uuid.UUID:
    doc: uuid.UUID = await conn.fetchval(
        "insert into public.documents (org_id, knowledge_base_id, source_type, title, status) "
        "values ($1, $2, 'text', $3, 'ready') returning id",
        org,
        base,
        title,
    )
    chunks = chunk_text(text, title=title)
    vectors = await asyncio.to_thread(LocalMiniLMEmbedder().embed, [c.content for c in chunks])
    await insert_chunks(conn, org, base, doc, chunks, vectors)
    return doc


@dataclass
class Tenancy:
    orgs: dict[str, uuid.UUID]
    bases: dict[str, uuid.UUID]
    docs: dict[str, uuid.UUID]


@pytest_asyncio.fixture
async def pool(db_url: str) -> AsyncIterator[asyncpg.Pool]:
    p = await create_pool(db_url, min_size=1, max_size=4)
    try:
        yield p
    finally:
        await p.close()


@pytest_asyncio.fixture
async def tenancy(db_url: str) -> Tenancy:
    conn = await connect(db_url)
    try:
        t = Tenancy({}, {}, {})
        for org in ("A", "B"):
            t.orgs[org] = await conn.fetchval(
                "insert into public.organizations (name) values ($1) returning id", org
            )
        for name, org in (("clinic", "A"), ("garage", "A"), ("other", "B")):
            t.bases[name] = await conn.fetchval(
                "insert into public.knowledge_bases (org_id, name) values ($1, $2) returning id",
                t.orgs[org],
                name,
            )
        texts = {
            "clinic": ("Parking", "The clinic's parking code is 4729. Park behind the bakery."),
            "garage": ("Tyres", "We fit winter tyres from October. A tyre change costs 40 euros."),
            "other": ("Secret", "The clinic's parking code is 1111 at the rival practice."),
        }
        for name, (title, text) in texts.items():
            org = "B" if name == "other" else "A"
            t.docs[name] = await add_document(conn, t.orgs[org], t.bases[name], title, text)
        return t
    finally:
        await conn.close()


async def test_pg_retriever_scoped_to_org_and_bases(pool: asyncpg.Pool, tenancy: Tenancy) -> None:
    t, emb = tenancy, LocalMiniLMEmbedder()
    both = PgRetriever(pool, t.orgs["A"], [t.bases["clinic"], t.bases["garage"]], emb)
    hits = await both.search("what is the code for parking?", top_k=5, min_score=0.0)
    assert hits[0].document_id == t.docs["clinic"] and "4729" in hits[0].content
    assert hits[0].document_title == "Parking" and hits[0].score > hits[-1].score
    assert {h.document_id for h in hits} == {t.docs["clinic"], t.docs["garage"]}
    assert all("1111" not in h.content for h in hits)  # B's chunk is never a candidate
    # min_score drops weak matches; one base only searches that base.
    strong = await both.search("what is the code for parking?", top_k=5, min_score=0.4)
    assert [h.document_id for h in strong] == [t.docs["clinic"]]
    garage = PgRetriever(pool, t.orgs["A"], [t.bases["garage"]], emb, ef_search=100)
    assert {h.document_id for h in await garage.search("parking", top_k=5, min_score=0)} == {
        t.docs["garage"]
    }
    # Naming another org's base gets nothing: the org filter is part of every query.
    sneaky = PgRetriever(pool, t.orgs["A"], [t.bases["other"]], emb)
    assert await sneaky.search("parking code", top_k=5, min_score=0) == []


async def test_per_turn_with_pgvector(pool: asyncpg.Pool, tenancy: Tenancy) -> None:
    retriever = PgRetriever(
        pool, tenancy.orgs["A"], [tenancy.bases["clinic"]], LocalMiniLMEmbedder()
    )
    await retriever.warm_up()
    used: list[list[str]] = []
    step = KnowledgeRetrieval(retriever, KB, timeout_s=2.0, on_used=used.append)
    context = LLMContext([{"role": "user", "content": "Where do I park, is there a code?"}])
    await run_test(
        step, frames_to_send=[LLMContextFrame(context)], expected_down_frames=[LLMContextFrame]
    )
    (message,) = knowledge_messages(context)
    assert "4729" in message["content"] and message["role"] == "developer"
    assert len(used) == 1 and len(used[0]) == 1


# --- the per-turn processor with frames ----------------------------------------------------


async def test_knowledge_message_is_added_then_replaced() -> None:
    fake = FakeRetriever([chunk("Parking code is 4729."), chunk("Weak.", score=0.1)])
    used: list[list[str]] = []
    step = KnowledgeRetrieval(fake, KB, on_used=used.append)
    context = LLMContext([{"role": "user", "content": "What is the parking code please?"}])
    await run_test(step, frames_to_send=[LLMContextFrame(context)])
    first = messages(context)
    assert [m["role"] for m in first] == ["developer", "user"]
    assert "4729" in first[0]["content"] and "Weak" not in first[0]["content"]
    assert used == [[str(fake.chunks[0].id)]]
    # Next turn: one knowledge message, for the new question, just before it.
    fake.chunks = [chunk("We open at 8 on Saturdays.")]
    context.add_message({"role": "assistant", "content": "It is 4729."})
    context.add_message({"role": "user", "content": "And on Saturdays?"})
    await run_test(
        KnowledgeRetrieval(fake, KB, on_used=used.append), frames_to_send=[LLMContextFrame(context)]
    )
    roles = [m["role"] for m in messages(context)]
    assert roles == ["user", "assistant", "developer", "user"]
    (message,) = knowledge_messages(context)
    assert "Saturdays" in message["content"] and "4729" not in message["content"]
    # A short follow-up is searched together with the previous question.
    assert fake.queries[-1] == "What is the parking code please? And on Saturdays?"
    # Nothing relevant: the old message goes, none comes.
    fake.chunks = []
    context.add_message({"role": "user", "content": "Do you sell ice cream at the clinic?"})
    await run_test(
        KnowledgeRetrieval(fake, KB, on_used=used.append), frames_to_send=[LLMContextFrame(context)]
    )
    assert knowledge_messages(context) == [] and used[-1] == []


async def test_timeout_lets_the_turn_go_on_without_knowledge() -> None:
    fake = FakeRetriever([chunk("Parking code is 4729.")], delay=2.0)
    used: list[list[str]] = []
    step = KnowledgeRetrieval(fake, KB, timeout_s=0.1, on_used=used.append)
    stamp = Stamp()
    context = LLMContext([{"role": "user", "content": "What is the parking code?"}])
    started = time.monotonic()
    await run_test(Pipeline([step, stamp]), frames_to_send=[LLMContextFrame(context)])
    passed = dict(stamp.times)["LLMContextFrame"] - started
    assert passed < 1.0, passed
    assert step.timeouts == 1 and knowledge_messages(context) == [] and used == [[]]


async def test_audio_keeps_flowing_while_a_search_is_in_flight() -> None:
    fake = FakeRetriever([chunk("Parking code is 4729.")], delay=0.6)
    step, stamp = KnowledgeRetrieval(fake, KB, timeout_s=2.0), Stamp()
    context = LLMContext([{"role": "user", "content": "What is the parking code?"}])
    frames: list[Frame] = [LLMContextFrame(context), SleepFrame(0.05)]
    frames += [audio() for _ in range(10)] + [UserStartedSpeakingFrame()]
    started = time.monotonic()
    down, _ = await run_test(Pipeline([step, stamp]), frames_to_send=frames)
    names = [type(f).__name__ for f in down]
    # Audio and system frames sent after the context frame overtook it (it waited for search).
    assert names.index("LLMContextFrame") == len(names) - 1, names
    assert names.count("InputAudioRawFrame") == 10
    audio_times = [t - started for n, t in stamp.times if n == "InputAudioRawFrame"]
    context_time = dict(stamp.times)["LLMContextFrame"] - started
    assert max(audio_times) < 0.4 < context_time, (audio_times, context_time)
    assert fake.finished == 1 and knowledge_messages(context)


async def test_interruption_cancels_the_search() -> None:
    fake = FakeRetriever([chunk("Parking code is 4729.")], delay=0.5)
    step = KnowledgeRetrieval(fake, KB, timeout_s=2.0)
    context = LLMContext([{"role": "user", "content": "What is the parking code?"}])
    frames: list[Frame] = [LLMContextFrame(context), SleepFrame(0.1), InterruptionFrame()]
    await run_test(step, frames_to_send=frames, expected_down_frames=[InterruptionFrame])
    assert fake.queries and fake.finished == 0  # the turn was superseded by the caller


def test_turn_query() -> None:
    assert turn_query([{"role": "assistant", "content": "Hi"}]) is None
    parts = [{"type": "text", "text": "opening hours"}]
    assert turn_query([{"role": "user", "content": parts}]) == "opening hours"


# --- tool mode and the transcript ----------------------------------------------------------


@dataclass
class Params:
    arguments: dict[str, Any]
    results: list[Any] = field(default_factory=list)

    async def result_callback(self, result: Any, **_kw: Any) -> None:
        self.results.append(result)


async def test_lookup_tool() -> None:
    fake = FakeRetriever([chunk("Parking code is 4729.", title="Parking")])
    used: list[list[str]] = []
    handle = lookup_handler(fake, KB, used.append)
    p = Params({"query": "parking code"})
    await handle(p)  # type: ignore[arg-type]
    assert p.results == [
        {"results": [{"source": "Parking", "text": "Parking code is 4729.", "score": 0.8}]}
    ]
    assert fake.queries == ["parking code"] and used == [[str(fake.chunks[0].id)]]
    slow = lookup_handler(FakeRetriever([], delay=1.0), KB, timeout_s=0.05)
    await slow(p)  # type: ignore[arg-type]
    assert "did not answer in time" in p.results[-1]["error"]


class FakeLLM:
    def __init__(self) -> None:
        self.functions: dict[str, Any] = {}

    def register_function(self, name: str, handler: Any) -> None:
        self.functions[name] = handler


def test_install_knowledge_modes_and_recorder() -> None:
    base = {"name": "A", "system_prompt": "Be brief."}
    recorder = TranscriptRecorder(LatencyObserver())
    user, llm_step = FrameProcessor(), FrameProcessor()
    fake = FakeRetriever([])
    # per_turn: the processor goes right after the user aggregator.
    agent = AgentConfig.model_validate({**base, "knowledge": {"base_ids": [str(uuid.uuid4())]}})
    processors = [user, llm_step]
    step = install_knowledge(
        agent,
        fake,
        processors=processors,
        user=user,
        llm=cast(Any, FakeLLM()),
        context=LLMContext(),
        recorder=recorder,
    )
    assert processors == [user, step, llm_step]
    # tool: a lookup_knowledge tool next to the agent's own.
    agent = AgentConfig.model_validate(
        {
            **base,
            "tools": [{"type": "end_call"}],
            "knowledge": {"base_ids": [str(uuid.uuid4())], "mode": "tool"},
        }
    )
    context, llm = LLMContext(tools=cast(Any, tools_schema(agent))), FakeLLM()
    processors = [user, llm_step]
    install_knowledge(
        agent,
        fake,
        processors=processors,
        user=user,
        llm=cast(Any, llm),
        context=context,
        recorder=recorder,
    )
    assert processors == [user, llm_step] and LOOKUP_TOOL in llm.functions
    tools = context.tools
    assert isinstance(tools, ToolsSchema)
    assert [t.name for t in tools.standard_tools] == ["end_call", LOOKUP_TOOL]
    # Ids land on the next assistant turn (appended by lookups, replaced per turn).
    recorder.user("What is the code?", None)
    recorder.knowledge_used(["a"], append=True)
    recorder.knowledge_used(["b", "a"], append=True)
    recorder.assistant("It is 4729.", None, False)
    recorder.assistant("Anything else?", None, False)
    assert [t.extra for t in recorder.turns] == [{}, {"knowledge_chunk_ids": ["a", "b"]}, {}]


@pytest.mark.parametrize("mode", ["per_turn", "tool"])
def test_no_retriever_means_no_knowledge(mode: str) -> None:
    agent = AgentConfig.model_validate(
        {
            "name": "A",
            "system_prompt": "B",
            "knowledge": {"base_ids": [str(uuid.uuid4())], "mode": mode},
        }
    )
    processors: list[FrameProcessor] = [FrameProcessor()]
    llm = FakeLLM()
    assert (
        install_knowledge(
            agent,
            None,
            processors=processors,
            user=processors[0],
            llm=cast(Any, llm),
            context=LLMContext(),
            recorder=TranscriptRecorder(LatencyObserver()),
        )
        is None
    )
    assert len(processors) == 1 and not llm.functions
