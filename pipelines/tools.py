"""Agent tools: schemas for the LLM and handlers registered on the LLM service.

Built in: ``end_call``. User defined: HTTP tools (the LLM's arguments become the query string
for GET/DELETE or the JSON body otherwise). Handlers run as asyncio tasks off the audio path.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
from loguru import logger
from pipecat.adapters.llm.schemas.function_schema import FunctionSchema
from pipecat.adapters.llm.schemas.tools_schema import ToolsSchema
from pipecat.frames.frames import EndWorkerFrame, FunctionCallResultProperties
from pipecat.services.llm_service import FunctionCallParams, LLMService

from parley.config import AgentConfig, EndCallTool, HttpTool

MAX_RESULT_CHARS = 4000
_ENV_REF = re.compile(r"\$\{([A-Z0-9_]+)\}")

Handler = Callable[[FunctionCallParams], Awaitable[None]]


def tools_schema(agent: AgentConfig) -> ToolsSchema | None:
    if not agent.tools:
        return None
    schemas = []
    for tool in agent.tools:
        if isinstance(tool, EndCallTool):
            schemas.append(FunctionSchema(tool.name, tool.description, {}, []))
        else:
            p = tool.parameters
            schemas.append(
                FunctionSchema(
                    tool.name, tool.description, p.get("properties", {}), p.get("required", [])
                )
            )
    return ToolsSchema(standard_tools=schemas)


def _expand_env(value: str) -> str:
    # Secrets stay in the environment, not in agent files or the database.
    return _ENV_REF.sub(lambda m: os.environ.get(m.group(1), ""), value)


def http_handler(tool: HttpTool, client: httpx.AsyncClient) -> Handler:
    async def handle(params: FunctionCallParams) -> None:
        args = dict(params.arguments)
        headers = {k: _expand_env(v) for k, v in tool.headers.items()}
        send_query = tool.method in ("GET", "DELETE")
        try:
            resp = await client.request(
                tool.method,
                str(tool.url),
                params=args if send_query else None,
                json=None if send_query else args,
                headers=headers,
                timeout=tool.timeout_secs,
            )
            body = resp.text[:MAX_RESULT_CHARS]
            try:
                data: Any = json.loads(body)
            except ValueError:
                data = body
            result: dict[str, Any] = {"status": resp.status_code, "data": data}
            if resp.status_code >= 400:
                result["error"] = f"the service answered HTTP {resp.status_code}"
        except httpx.TimeoutException:
            result = {"error": f"the service did not answer within {tool.timeout_secs} s"}
        except httpx.HTTPError as err:
            result = {"error": f"the service could not be reached ({type(err).__name__})"}
        logger.info(f"tool {tool.name} -> {result.get('status', 'error')}")
        await params.result_callback(result)

    return handle


def end_call_handler() -> Handler:
    async def handle(params: FunctionCallParams) -> None:
        # The goodbye the LLM spoke before calling is already queued downstream; the EndWorkerFrame
        # follows it, so the worker ends after the audio has been played. It goes out before the
        # result so nothing downstream mistakes the finished call for a finished turn.
        await params.llm.push_frame(EndWorkerFrame(reason="end_call"))
        await params.result_callback(
            {"ok": True}, properties=FunctionCallResultProperties(run_llm=False)
        )

    return handle


MAX_CHAINED_CALLS = 6


def _chained_calls(params: FunctionCallParams) -> int:
    n = 0
    for m in reversed(params.context.get_messages()):
        role = m.get("role") if isinstance(m, dict) else None
        if role == "user":
            break
        n += role == "tool"
    return n


def guarded(name: str, handler: Handler) -> Handler:
    """Stop an LLM that keeps calling tools without answering (it would loop forever)."""

    async def handle(params: FunctionCallParams) -> None:
        if _chained_calls(params) >= MAX_CHAINED_CALLS:
            logger.warning(f"tool {name}: {MAX_CHAINED_CALLS} calls without an answer; refusing")
            await params.result_callback(
                {"error": "too many tool calls in a row; answer the user now"},
                properties=FunctionCallResultProperties(run_llm=False),
            )
            return
        await handler(params)

    return handle


def register_tools(agent: AgentConfig, llm: LLMService, client: httpx.AsyncClient) -> None:
    for tool in agent.tools:
        if isinstance(tool, EndCallTool):
            llm.register_function(tool.name, end_call_handler())
        else:
            llm.register_function(tool.name, guarded(tool.name, http_handler(tool, client)))
