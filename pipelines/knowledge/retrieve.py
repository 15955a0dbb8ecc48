"""Knowledge in calls: retrieve chunks for each user turn, or let the LLM look them up.

Two modes (``agent.knowledge.mode``):

* ``per_turn`` (default): :class:`KnowledgeRetrieval` sits between the user aggregator and the
  LLM. When a user turn's ``LLMContextFrame`` arrives it embeds the caller's words, searches
  pgvector and puts the best chunks into the context as one ``developer`` message just before
  the caller's message, replacing the previous turn's, before the frame goes on to the LLM.
  It is the default because it needs no tool-calling skill from the model (small local models
  answer from it too) and costs one embedding + one indexed query (~10-20 ms) instead of an
  extra LLM round trip (~0.3-1 s).
  The search has a hard timeout (300 ms): after it, the turn goes on without knowledge.
* ``tool``: a ``lookup_knowledge(query)`` tool; the model decides when to search and with
  which words. Better for agents whose turns mostly need no knowledge, or when the caller's
  words make a poor query; costs a second LLM call whenever it is used.

Either way the chunk ids used reach the transcript (``Turn.extra["knowledge_chunk_ids"]`` of
the assistant turn that answered). Retrieval is awaited on the processor's data-frame path
only: Pipecat handles system frames (input audio, VAD, interruptions) on a separate task, so
they keep flowing while a search is in flight, and an interruption cancels the search.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Final, Protocol
from uuid import UUID

import asyncpg
from loguru import logger
from pipecat.adapters.llm.schemas.function_schema import FunctionSchema
from pipecat.adapters.llm.schemas.tools_schema import ToolsSchema
from pipecat.frames.frames import CancelFrame, EndFrame, Frame, LLMContextFrame, StartFrame
from pipecat.processors.aggregators.llm_context import LLMContext
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
from pipecat.services.llm_service import FunctionCallParams, LLMService

from parley.config import AgentConfig, KnowledgeChoice
from parley.errors import ConfigError
from pipelines.knowledge.embed import Embedder
from pipelines.knowledge.store import (
    DEFAULT_EF_SEARCH,
    RetrievedChunk,
    embed_query,
    search_chunks,
)
from pipelines.tools import guarded

PER_TURN_TIMEOUT_S = 0.3
TOOL_TIMEOUT_S = 2.0
LOOKUP_TOOL = "lookup_knowledge"
MAX_KNOWLEDGE_CHARS = 6000  # ~1,500 tokens: top_k chunks fit; a runaway config cannot flood
SHORT_QUERY_WORDS = 4
KNOWLEDGE_HEADER = "Knowledge base excerpts that may answer the caller's last message."
# Pipecat's role for instructions injected mid-conversation: each adapter converts it for its
# provider (to "user" where unsupported). A "system" message first in the context would be
# taken as the system prompt by Anthropic/Google adapters (and is deprecated in Pipecat 1.9+).
KNOWLEDGE_ROLE: Final = "developer"
_INSTRUCTIONS = (
    "Answer from them when they are relevant, briefly and in your own words. If they do not "
    "cover the question, say you don't know rather than guessing. Never mention excerpts, "
    "documents or a knowledge base."
)

ChunkIds = Callable[[list[str]], None]


class Retriever(Protocol):
    """Finds the chunks of an agent's knowledge bases nearest to a query."""

    async def search(self, query: str, *, top_k: int, min_score: float) -> list[RetrievedChunk]:
        """Best first, only chunks with cosine similarity >= ``min_score``."""
        ...

    async def warm_up(self) -> None:
        """Load what the first search would otherwise wait for (the embedding model)."""
        ...


class PgRetriever:
    """Search with the configured embedder and pgvector, on the service path.

    Scoped at construction to one organization and its knowledge bases: a session can never
    see another tenant's chunks whatever base ids the agent config names. ``ef_search`` sets
    ``hnsw.ef_search`` for each query (None: the server's setting), trading latency for recall
    on large bases.
    """

    def __init__(
        self,
        pool: asyncpg.Pool,
        org_id: UUID,
        base_ids: Sequence[UUID],
        embedder: Embedder,
        *,
        ef_search: int | None = DEFAULT_EF_SEARCH,
    ) -> None:
        self._pool, self._org_id, self._base_ids = pool, org_id, list(base_ids)
        self._embedder, self._ef_search = embedder, ef_search

    async def warm_up(self) -> None:
        await asyncio.to_thread(self._embedder.embed, ["warm up"])

    async def search(self, query: str, *, top_k: int, min_score: float) -> list[RetrievedChunk]:
        # Embedding is CPU (or network) bound: in a thread, so the event loop keeps moving audio.
        vector = await asyncio.to_thread(embed_query, self._embedder, query)
        async with self._pool.acquire() as conn:
            return await search_chunks(
                conn,
                self._org_id,
                self._base_ids,
                vector,
                top_k,
                min_score,
                ef_search=self._ef_search,
            )


def message_text(message: Any) -> str:
    """Text of a context message (plain string or a list of content parts)."""
    content = message.get("content") if isinstance(message, dict) else None
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(
            str(p.get("text", ""))
            for p in content
            if isinstance(p, dict) and p.get("type") == "text"
        )
    return ""


def _role(message: Any) -> str | None:
    return message.get("role") if isinstance(message, dict) else None


def turn_query(messages: Sequence[Any]) -> str | None:
    """What to search for: the caller's last message, when it is the newest message.

    A short follow-up ("and on Saturdays?") is prefixed with the caller's previous message so
    that it still finds the topic.
    """
    real = [m for m in messages if not is_knowledge_message(m)]
    if not real or _role(real[-1]) != "user":
        return None
    users = [message_text(m).strip() for m in real if _role(m) == "user"]
    query = users[-1]
    if not query:
        return None
    if len(query.split()) < SHORT_QUERY_WORDS and len(users) > 1 and users[-2]:
        query = f"{users[-2]} {query}"
    return query


def is_knowledge_message(message: Any) -> bool:
    return _role(message) in ("developer", "system") and message_text(message).startswith(
        KNOWLEDGE_HEADER
    )


def format_knowledge(chunks: Sequence[RetrievedChunk]) -> str | None:
    parts: list[str] = []
    size = 0
    for n, chunk in enumerate(chunks, start=1):
        part = f"[{n}] {chunk.document_title}\n{chunk.content.strip()}"
        if parts and size + len(part) > MAX_KNOWLEDGE_CHARS:
            break
        parts.append(part)
        size += len(part)
    if not parts:
        return None
    return "\n\n".join([KNOWLEDGE_HEADER, _INSTRUCTIONS, *parts])


def apply_knowledge(context: LLMContext, text: str | None) -> None:
    """Drop the previous retrieval message; put ``text`` just before the last user message."""
    messages = [m for m in context.get_messages() if not is_knowledge_message(m)]
    if text:
        at = len(messages)
        for i in range(len(messages) - 1, -1, -1):
            if _role(messages[i]) == "user":
                at = i
                break
        messages.insert(at, {"role": KNOWLEDGE_ROLE, "content": text})
    context.set_messages(messages)


class KnowledgeRetrieval(FrameProcessor):
    """Per-turn retrieval (see the module docstring). Place it right after the user aggregator."""

    def __init__(
        self,
        retriever: Retriever,
        knowledge: KnowledgeChoice,
        *,
        timeout_s: float = PER_TURN_TIMEOUT_S,
        on_used: ChunkIds | None = None,
    ) -> None:
        super().__init__()
        self._retriever, self._knowledge = retriever, knowledge
        self._timeout_s, self._on_used = timeout_s, on_used
        self._warming: asyncio.Task[None] | None = None
        self.timeouts = 0  # for tests and logs

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, StartFrame):
            self._warming = self.create_task(self._warm_up(), "knowledge-warm-up")
        elif isinstance(frame, (EndFrame, CancelFrame)) and self._warming is not None:
            await self.cancel_task(self._warming)
            self._warming = None
        elif isinstance(frame, LLMContextFrame) and direction == FrameDirection.DOWNSTREAM:
            await self._augment(frame.context)
        await self.push_frame(frame, direction)

    async def _warm_up(self) -> None:
        try:
            await self._retriever.warm_up()
        except Exception as err:  # the first turn will tell (and time out) if it is broken
            logger.warning(f"knowledge: warm-up failed: {err}")

    async def _augment(self, context: LLMContext) -> None:
        query = turn_query(context.get_messages())
        if query is None:
            return
        started = time.perf_counter()
        chunks: list[RetrievedChunk] = []
        try:
            async with asyncio.timeout(self._timeout_s):
                chunks = await self._retriever.search(
                    query, top_k=self._knowledge.top_k, min_score=self._knowledge.min_score
                )
        except TimeoutError:
            self.timeouts += 1
            logger.warning(
                f"knowledge: no answer within {self._timeout_s * 1000:.0f} ms; "
                "this turn goes on without knowledge"
            )
        except Exception as err:  # a broken database must not end the call
            logger.error(f"knowledge: retrieval failed ({type(err).__name__}: {err})")
        ms = (time.perf_counter() - started) * 1000
        logger.info(f"knowledge: {len(chunks)} chunk(s) for {query[:60]!r} in {ms:.0f} ms")
        apply_knowledge(context, format_knowledge(chunks))
        if self._on_used is not None:
            self._on_used([str(c.id) for c in chunks])


def lookup_schema() -> FunctionSchema:
    return FunctionSchema(
        LOOKUP_TOOL,
        "Search the business's knowledge base (opening hours, prices, policies, services, "
        "FAQs). Use it before answering any factual question about the business.",
        {"query": {"type": "string", "description": "A short standalone search query."}},
        ["query"],
    )


def lookup_handler(
    retriever: Retriever,
    knowledge: KnowledgeChoice,
    on_used: ChunkIds | None = None,
    timeout_s: float = TOOL_TIMEOUT_S,
) -> Callable[[FunctionCallParams], Any]:
    async def handle(params: FunctionCallParams) -> None:
        query = str(params.arguments.get("query") or "").strip()
        result: dict[str, Any]
        if not query:
            result = {"error": "give a query: what to look up"}
        else:
            try:
                async with asyncio.timeout(timeout_s):
                    chunks = await retriever.search(
                        query, top_k=knowledge.top_k, min_score=knowledge.min_score
                    )
                result = {
                    "results": [
                        {"source": c.document_title, "text": c.content, "score": round(c.score, 3)}
                        for c in chunks
                    ]
                }
                if not chunks:
                    result["note"] = "nothing relevant found; say you don't know"
                if on_used is not None:
                    on_used([str(c.id) for c in chunks])
            except TimeoutError:
                result = {"error": "the knowledge base did not answer in time"}
            except Exception as err:
                logger.error(f"knowledge: lookup failed ({type(err).__name__}: {err})")
                result = {"error": "the knowledge base is unavailable"}
        await params.result_callback(result)

    return handle


def with_lookup_tool(tools: ToolsSchema | None) -> ToolsSchema:
    existing = list(tools.standard_tools) if tools is not None else []
    if any(t.name == LOOKUP_TOOL for t in existing):
        raise ConfigError(
            f"the agent has its own tool named {LOOKUP_TOOL!r}, which knowledge mode 'tool' "
            "needs (fix: rename that tool, or use knowledge mode 'per_turn')"
        )
    return ToolsSchema(
        standard_tools=[*existing, lookup_schema()],
        custom_tools=tools.custom_tools if tools is not None else None,
    )


class KnowledgeSink(Protocol):
    """Where the chunk ids used for an answer go (a call's transcript, a chat reply)."""

    def knowledge_used(self, chunk_ids: Iterable[object], *, append: bool = False) -> None: ...


def install_knowledge(
    agent: AgentConfig,
    retriever: Retriever | None,
    *,
    processors: list[FrameProcessor],
    user: FrameProcessor,
    llm: LLMService[Any],
    context: LLMContext,
    recorder: KnowledgeSink,
    timeout_s: float = PER_TURN_TIMEOUT_S,
) -> KnowledgeRetrieval | None:
    """Wire ``agent.knowledge`` into a session being built (a no-op without it)."""
    knowledge = agent.knowledge
    if knowledge is None:
        return None
    if retriever is None:
        # The file harness without a database, for instance: say so instead of failing the call.
        logger.warning("the agent has knowledge bases but no retriever was given; ignoring them")
        return None
    if knowledge.mode == "tool":
        tools = context.tools if isinstance(context.tools, ToolsSchema) else None
        context.set_tools(with_lookup_tool(tools))
        handler = lookup_handler(
            retriever, knowledge, lambda ids: recorder.knowledge_used(ids, append=True)
        )
        llm.register_function(LOOKUP_TOOL, guarded(LOOKUP_TOOL, handler))
        return None
    if user not in processors:
        raise ConfigError(
            f"pipeline {agent.pipeline!r} has no user aggregator, so per-turn knowledge has "
            "nowhere to go (fix: include parts.user in the graph, or use knowledge mode 'tool')"
        )
    step = KnowledgeRetrieval(
        retriever, knowledge, timeout_s=timeout_s, on_used=recorder.knowledge_used
    )
    processors.insert(processors.index(user) + 1, step)
    return step
