"""A text-only pipeline (user aggregator → LLM with tools → assistant aggregator)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from typing import Any

import httpx
from pipecat.frames.frames import (
    EndFrame,
    EndWorkerFrame,
    Frame,
    FunctionCallResultFrame,
    FunctionCallsStartedFrame,
    LLMFullResponseEndFrame,
    LLMTextFrame,
)
from pipecat.pipeline.pipeline import Pipeline
from pipecat.pipeline.worker import PipelineWorker
from pipecat.processors.aggregators.llm_context import LLMContext
from pipecat.processors.aggregators.llm_response_universal import LLMContextAggregatorPair
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
from pipecat.services.llm_service import LLMService

from parley.config import AgentConfig
from pipelines.knowledge.retrieve import Retriever, install_knowledge
from pipelines.tools import register_tools, tools_schema


class ReplyCollector(FrameProcessor):
    """Streams LLM text to ``on_text`` and signals the end of each reply."""

    def __init__(self, on_text: Callable[[str], None]) -> None:
        super().__init__()
        self._on_text = on_text
        self.reply_done = asyncio.Event()
        self.replies: list[str] = []
        self.tool_calls: list[dict[str, Any]] = []
        self.knowledge_chunk_ids: list[str] = []
        self._buf: list[str] = []
        self._calling_tools = False
        self.ended = False  # the session is ending (end_call): no more input is taken

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, LLMTextFrame):
            self._buf.append(frame.text)
            self._on_text(frame.text)
        elif isinstance(frame, EndWorkerFrame | EndFrame):
            self.ended = True
            self.reply_done.set()
        elif isinstance(frame, FunctionCallsStartedFrame):
            self._calling_tools = True
            self.tool_calls += [
                {"name": c.function_name, "arguments": dict(c.arguments)}
                for c in frame.function_calls
            ]
        elif isinstance(frame, FunctionCallResultFrame) and self._result_ends_reply(frame):
            self._finish()
        elif isinstance(frame, LLMFullResponseEndFrame):
            if self._calling_tools and not self._buf:
                # A tools-only response: the answer comes in the next response, once the tool
                # results are in (or never, for end_call: then the session ends).
                self._calling_tools = False
                await self.push_frame(frame, direction)
                return
            self._finish()
        await self.push_frame(frame, direction)

    def knowledge_used(self, chunk_ids: Iterable[object], *, append: bool = False) -> None:
        ids = [str(i) for i in chunk_ids]
        self.knowledge_chunk_ids = [*self.knowledge_chunk_ids, *ids] if append else ids

    @staticmethod
    def _result_ends_reply(frame: FunctionCallResultFrame) -> bool:
        props = frame.properties
        return frame.run_llm is False or (props is not None and props.run_llm is False)

    def _finish(self) -> None:
        self._calling_tools = False
        self.replies.append("".join(self._buf))
        self._buf.clear()
        self.reply_done.set()


def build_text_worker(
    agent: AgentConfig,
    llm: LLMService,
    on_text: Callable[[str], None],
    http: httpx.AsyncClient,
    history: list[dict[str, str]] | None = None,
    retriever: Retriever | None = None,
) -> tuple[PipelineWorker, ReplyCollector, LLMContext]:
    messages: list[Any] = []  # the system prompt is the LLM's system_instruction
    if agent.greeting:
        messages.append({"role": "assistant", "content": agent.greeting})
    messages += history or []
    context = LLMContext(messages=messages, **_tools_kw(agent))
    pair = LLMContextAggregatorPair(context)
    register_tools(agent, llm, http)
    collector = ReplyCollector(on_text)
    processors: list[FrameProcessor] = [pair.user(), llm, collector, pair.assistant()]
    install_knowledge(
        agent,
        retriever,
        processors=processors,
        user=pair.user(),
        llm=llm,
        context=context,
        recorder=collector,
    )
    pipeline = Pipeline(processors)
    worker = PipelineWorker(pipeline, enable_rtvi=False, idle_timeout_secs=None)
    return worker, collector, context


def _tools_kw(agent: AgentConfig) -> dict[str, Any]:
    schema = tools_schema(agent)
    return {"tools": schema} if schema is not None else {}
