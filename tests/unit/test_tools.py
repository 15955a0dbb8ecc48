"""Tools through the real LLM service and a local OpenAI-compatible server: HTTP tools hit a
local test server with the LLM's arguments; end_call ends the session without another turn."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest

from agents.text.chat import chat
from parley.config import AgentConfig
from parley.settings import Settings
from tests.conftest import make_agent
from tests.fakes import FakeCloud, Rule, Script, ToolCallReply


@dataclass
class Hit:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: Any


@dataclass
class ToolServer:
    url: str
    hits: list[Hit] = field(default_factory=list)


@pytest.fixture
def tool_server() -> Iterator[ToolServer]:
    hits: list[Hit] = []

    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            size = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(size) if size else b""
            u = urlparse(self.path)
            hits.append(
                Hit(
                    self.command,
                    u.path,
                    parse_qs(u.query),
                    dict(self.headers),
                    json.loads(raw) if raw else None,
                )
            )
            if u.path == "/slow":
                time.sleep(1.5)
            status = 404 if u.path == "/missing" else 200
            body = json.dumps({"confirmation": "BK-42", "free": ["10:30"]}).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = _answer

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield ToolServer(f"http://127.0.0.1:{server.server_address[1]}", hits)
    server.shutdown()


def _agent(cloud: FakeCloud, tools: list[dict[str, Any]]) -> AgentConfig:
    return make_agent(
        llm={"provider": "openai", "base_url": cloud.openai_base_url, "model": "test-model"},
        tools=tools,
    )


def _run_chat(agent: AgentConfig, tmp_path: Path, lines: list[str]) -> list[str]:
    import asyncio

    feed = iter(lines)

    def read_line() -> str:
        try:
            return next(feed)
        except StopIteration:
            raise EOFError from None

    settings = Settings(data_dir=tmp_path, openai_api_key="test-key")  # type: ignore[call-arg]
    return asyncio.run(chat(agent, settings, read_line=read_line, write=lambda _t: None))


def test_http_tool_posts_llm_arguments_and_feeds_result_back(
    tool_server: ToolServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CLINIC_TOKEN", "env-must-not-leak")
    script = Script(
        rules=[
            Rule("book", ToolCallReply("book", {"name": "Ann Lee", "day": "Tuesday"})),
            Rule("BK-42", "You are booked, reference BK-42."),
        ]
    )
    with FakeCloud(script, api_key=None) as cloud:
        tool = {
            "type": "http",
            "name": "book",
            "description": "Book a visit",
            "url": f"{tool_server.url}/appointments",
            "method": "POST",
            "headers": {"Authorization": "Bearer ${secrets.CLINIC_TOKEN}"},
            "parameters": {
                "type": "object",
                "properties": {"name": {"type": "string"}, "day": {"type": "string"}},
                "required": ["name"],
            },
        }
        agent = _agent(cloud, [tool]).with_secrets({"CLINIC_TOKEN": "s3cret-token"})
        replies = _run_chat(agent, tmp_path, ["Please book me in"])
        requests = cloud.requests
    assert replies == ["You are booked, reference BK-42."]
    (hit,) = tool_server.hits
    assert (hit.method, hit.path) == ("POST", "/appointments")
    assert hit.body == {"name": "Ann Lee", "day": "Tuesday"}
    assert hit.headers["Authorization"] == "Bearer s3cret-token"
    # The LLM saw the tool's schema, then the tool's result as a tool message.
    first_tools = requests[0]["tools"]
    assert first_tools[0]["function"]["name"] == "book"
    assert first_tools[0]["function"]["parameters"]["required"] == ["name"]
    tool_msg = requests[1]["messages"][-1]
    assert tool_msg["role"] == "tool"
    assert json.loads(tool_msg["content"])["data"]["confirmation"] == "BK-42"


def test_get_tool_sends_query_and_reports_errors_to_the_llm(
    tool_server: ToolServer, tmp_path: Path
) -> None:
    script = Script(
        rules=[
            Rule("any openings", ToolCallReply("slots", {"day": "Friday"})),
            Rule("late", ToolCallReply("late", {})),
            Rule("gone", ToolCallReply("gone", {})),
            Rule('"status": 200', "Friday at 10:30 is free."),
            Rule("did not answer", "Sorry, the booking system is slow."),
            Rule("HTTP 404", "Sorry, that service is unavailable."),
        ]
    )

    def tool(name: str, path: str, timeout: float = 5) -> dict[str, Any]:
        return {
            "type": "http",
            "name": name,
            "description": name,
            "method": "GET",
            "url": f"{tool_server.url}{path}",
            "timeout_secs": timeout,
            "parameters": {"type": "object", "properties": {"day": {"type": "string"}}},
        }

    with FakeCloud(script, api_key=None) as cloud:
        agent = _agent(
            cloud, [tool("slots", "/slots"), tool("late", "/slow", 0.3), tool("gone", "/missing")]
        )
        replies = _run_chat(agent, tmp_path, ["Any openings?", "Try late", "Try gone"])
        tool_results = [json.loads(r["messages"][-1]["content"]) for r in cloud.requests[1::2]]
    assert replies == [
        "Friday at 10:30 is free.",
        "Sorry, the booking system is slow.",
        "Sorry, that service is unavailable.",
    ]
    assert tool_server.hits[0].query == {"day": ["Friday"]}
    assert tool_results[1] == {"error": "the service did not answer within 0.3 s"}
    assert tool_results[2]["status"] == 404


def test_end_call_ends_the_session_without_another_llm_turn(tmp_path: Path) -> None:
    script = Script(rules=[Rule("bye", ToolCallReply("end_call", {}))], default="Hello!")
    with FakeCloud(script, api_key=None) as cloud:
        agent = _agent(cloud, [{"type": "end_call"}])
        # The third line is never read: end_call stopped the session after "bye".
        replies = _run_chat(agent, tmp_path, ["hi", "bye", "are you there?"])
        n_requests = len(cloud.requests)
    assert replies[0] == "Hello!"
    assert n_requests == 2


def test_a_tool_loop_is_cut_off(tool_server: ToolServer, tmp_path: Path) -> None:
    # This LLM answers every tool result with the same call again.
    script = Script(rules=[Rule("", ToolCallReply("slots", {"day": "Friday"}))])
    tool = {
        "type": "http",
        "name": "slots",
        "description": "d",
        "method": "GET",
        "url": f"{tool_server.url}/slots",
    }
    with FakeCloud(script, api_key=None) as cloud:
        _run_chat(_agent(cloud, [tool]), tmp_path, ["Any openings?"])
        n_requests = len(cloud.requests)
    assert len(tool_server.hits) == 6  # MAX_CHAINED_CALLS, then the loop is refused
    assert n_requests == 7
