"""``parley talk --text``: a keyboard chat with the agent's LLM, prompt and tools."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable

import httpx
from pipecat.frames.frames import EndFrame, LLMMessagesAppendFrame
from pipecat.workers.runner import WorkerRunner

from parley.config import AgentConfig
from parley.settings import Settings
from pipelines.registry import resolve
from pipelines.text import build_text_worker


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
    entry = resolve(agent, settings).llm
    llm = entry.build(agent, settings)
    async with httpx.AsyncClient() as http:
        worker, collector, _ = build_text_worker(agent, llm, write, http)  # type: ignore[arg-type]
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
