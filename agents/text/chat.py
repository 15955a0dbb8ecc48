"""``parley talk --text``: a keyboard chat with the agent's LLM, prompt and tools."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pipecat.frames.frames import EndFrame, LLMMessagesAppendFrame
from pipecat.services.llm_service import LLMService
from pipecat.workers.runner import WorkerRunner

from parley.config import AgentConfig
from parley.errors import ParleyError
from parley.log import redact
from parley.settings import Settings
from pipelines.knowledge.retrieve import Retriever
from pipelines.registry import resolve
from pipelines.text import build_text_worker
from pipelines.tools import tool_client


@dataclass(frozen=True)
class ChatReply:
    text: str
    tool_calls: list[dict[str, Any]]
    knowledge_chunk_ids: list[str]


class LLMFailed(ParleyError):
    """The LLM provider answered with an error (bad key, model not found, outage)."""


def _llm(agent: AgentConfig, settings: Settings) -> LLMService[Any]:
    llm = resolve(agent, settings).llm.build(agent, settings)
    assert isinstance(llm, LLMService)
    return llm


def _print(text: str) -> None:
    sys.stdout.write(text)
    sys.stdout.flush()


async def chat(
    agent: AgentConfig,
    settings: Settings,
    read_line: Callable[[], str] = lambda: input("you> "),
    write: Callable[[str], None] = _print,
) -> list[str]:
    """Run until EOF, 'quit', or the agent's end_call tool. Returns the agent's replies."""
    llm = _llm(agent, settings)
    async with tool_client(agent, settings) as http:
        worker, collector, _ = build_text_worker(agent, llm, write, http)
        runner = WorkerRunner(handle_sigint=False)
        await runner.add_workers(worker)
        running = asyncio.create_task(runner.run())
        if agent.greeting:
            write(f"agent> {agent.greeting}\n")
        while not running.done() and not collector.ended:
            try:
                line = await asyncio.to_thread(read_line)
            except EOFError:
                break
            if line.strip().lower() in ("quit", "exit", "/q"):
                break
            if not line.strip():
                continue
            collector.reply_done.clear()
            write("agent> ")
            await worker.queue_frame(
                LLMMessagesAppendFrame([{"role": "user", "content": line}], run_llm=True)
            )
            done = asyncio.create_task(collector.reply_done.wait())
            await asyncio.wait({done, running}, return_when=asyncio.FIRST_COMPLETED)
            done.cancel()
            write("\n")
        if not running.done():
            await worker.queue_frame(EndFrame())
        await running
    return collector.replies


async def reply_once(
    agent: AgentConfig,
    settings: Settings,
    message: str,
    history: list[dict[str, str]] | None = None,
    timeout_secs: float = 60.0,
    retriever: Retriever | None = None,
) -> ChatReply:
    """One turn of text chat (the API's ``/chat``): the reply and the tools it called.

    ``timeout_secs`` bounds everything, building the LLM and tearing down included: at the
    deadline the pipeline is cancelled (not drained) and ``TimeoutError`` raised."""
    async with asyncio.timeout(timeout_secs):
        # Off the loop: a local model may load here, and the API serves others meanwhile.
        llm = await asyncio.to_thread(_llm, agent, settings)
        async with tool_client(agent, settings) as http:
            worker, collector, _ = build_text_worker(
                agent, llm, lambda _t: None, http, history, retriever
            )
            runner = WorkerRunner(handle_sigint=False)
            await runner.add_workers(worker)
            errors: list[str] = []

            async def on_error(_worker: Any, frame: Any) -> None:
                errors.append(str(getattr(frame, "error", frame)))
                collector.reply_done.set()

            worker.add_event_handler("on_pipeline_error", on_error)
            running = asyncio.create_task(runner.run())
            finished = False
            try:
                await worker.queue_frame(
                    LLMMessagesAppendFrame([{"role": "user", "content": message}], run_llm=True)
                )
                await collector.reply_done.wait()
                await worker.queue_frame(EndFrame())
                await running
                finished = True
            finally:
                if not finished:
                    await _cancel(running)
    if errors:
        raise LLMFailed(f"the agent's LLM failed: {redact(errors[0])}")
    return ChatReply(
        "".join(collector.replies), collector.tool_calls, collector.knowledge_chunk_ids
    )


async def _cancel(running: asyncio.Task[None]) -> None:
    # Past the deadline nothing is awaited for long: the runner gets a moment to stop.
    running.cancel()
    await asyncio.wait({running}, timeout=2.0)
