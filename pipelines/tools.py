"""Agent tools: schemas for the LLM and handlers registered on the LLM service.

Built in: ``end_call``. User defined: HTTP tools (the LLM's arguments become the query string
for GET/DELETE or the JSON body otherwise). Handlers run as asyncio tasks off the audio path.
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
from loguru import logger
from pipecat.adapters.llm.schemas.function_schema import FunctionSchema
from pipecat.adapters.llm.schemas.tools_schema import ToolsSchema
from pipecat.frames.frames import EndWorkerFrame, FunctionCallResultProperties
from pipecat.services.llm_service import FunctionCallParams, LLMService

from parley.config import AgentConfig, EndCallTool, HttpTool
from parley.egress import (
    EgressClient,
    EgressDeadline,
    EgressError,
    EgressPolicy,
    EgressRefused,
    Fetched,
    egress_client,
    fetch,
)
from parley.refs import MissingSecret, expand
from parley.settings import Settings

MAX_RESULT_CHARS = 4000  # of the result the LLM sees
MAX_RESPONSE_BYTES = 256 * 1024  # read from the service; the rest is never read

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


def tool_client(agent: AgentConfig, settings: Settings) -> EgressClient:
    """The client runtimes pass to ``register_tools``: pooled connections under the agent's
    egress policy (the operator's for stored configs; any address for the author's own file)."""
    return egress_client(EgressPolicy.for_agent(agent, settings))


def http_handler(
    tool: HttpTool, client: httpx.AsyncClient, policy: EgressPolicy, agent: AgentConfig
) -> Handler:
    # A plain client would connect anywhere: only an egress client under this policy is used;
    # otherwise each call gets its own.
    shared = client if isinstance(client, EgressClient) and client.policy == policy else None
    host = tool.url.host or "?"

    async def handle(params: FunctionCallParams) -> None:
        args = dict(params.arguments)
        try:
            # Secrets are filled in only now, per request: never kept in the handler.
            headers = {k: expand(v, agent) for k, v in tool.headers.items()}
        except MissingSecret as err:
            logger.warning(f"tool {tool.name}: not sent: {err}")
            await params.result_callback({"error": f"the tool is not configured: {err}"})
            return
        send_query = tool.method in ("GET", "DELETE")
        started = time.monotonic()
        try:
            got = await fetch(
                str(tool.url),
                policy,
                method=tool.method,
                params=args if send_query else None,
                json_body=None if send_query else args,
                headers=headers,
                max_bytes=MAX_RESPONSE_BYTES,
                deadline=tool.timeout_secs,
                truncate=True,
                client=shared,
            )
            result = tool_result(got)
            outcome = f"HTTP {got.status}" + (" (cut at the size cap)" if got.truncated else "")
        except EgressRefused as err:
            result, outcome = {"error": str(err)}, f"refused ({err.reason})"
            if err.host != host:  # a redirect or another hop was refused
                outcome = f"refused at {err.host} ({err.reason})"
        except EgressDeadline:
            result = {"error": f"the service did not answer within {tool.timeout_secs:g} s"}
            outcome = f"deadline of {tool.timeout_secs:g} s"
        except EgressError as err:
            result, outcome = {"error": f"the service could not be reached: {err}"}, "unreachable"
        ms = (time.monotonic() - started) * 1000
        logger.info(f"tool {tool.name} {tool.method} {host} -> {outcome} in {ms:.0f} ms")
        await params.result_callback(result)

    return handle


def tool_result(got: Fetched) -> dict[str, Any]:
    """What the LLM sees: the status and the body (parsed when it is JSON), at most
    MAX_RESULT_CHARS of it."""
    text = got.body.decode("utf-8", errors="replace")
    data: Any = text if got.truncated else _json_or_text(text)
    shown = data if isinstance(data, str) else json.dumps(data)
    result: dict[str, Any] = {"status": got.status, "data": data}
    if len(shown) > MAX_RESULT_CHARS:
        result["data"] = shown[:MAX_RESULT_CHARS]
    if got.truncated or len(shown) > MAX_RESULT_CHARS:
        result["truncated"] = True
    if got.status >= 400:
        result["error"] = f"the service answered HTTP {got.status}"
    return result


def _json_or_text(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


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


def register_tools(
    agent: AgentConfig,
    llm: LLMService,
    client: httpx.AsyncClient,
    policy: EgressPolicy | None = None,
) -> None:
    """``client``: pass ``tool_client(agent, settings)`` to pool connections. ``policy``
    defaults to the agent's under the environment's settings."""
    if policy is None:
        policy = client.policy if isinstance(client, EgressClient) else _env_policy(agent)
    for tool in agent.tools:
        if isinstance(tool, EndCallTool):
            llm.register_function(tool.name, end_call_handler())
        else:
            handler = http_handler(tool, client, policy, agent)
            llm.register_function(tool.name, guarded(tool.name, handler))


def _env_policy(agent: AgentConfig) -> EgressPolicy:
    # Settings are read from the environment here: that is where a runtime's settings come from.
    return EgressPolicy.for_agent(agent, Settings())
