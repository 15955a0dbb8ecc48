"""Issue 10, finding 3: everything a tenant points at goes through one egress policy.

Attacks with real local servers (127.0.0.1 stands in for the server's internal network): a
stored config's HTTP tool or provider URL aimed at loopback or the metadata address is refused
(a 422 when saved as a literal address, a refused-by-policy tool error at connect time for a
name) and the listener sees no connection; a 50 MB answer is cut at the cap with bounded
memory; a trickling server is cut at the total deadline; redirects and DNS answers are checked
hop by hop and address by address, and the connection goes to the address that was checked.
The operator's allowed ranges still let a destination through.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
import tracemalloc
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, cast
from urllib.parse import parse_qs, urlparse

import httpx
import pytest
import pytest_asyncio
from loguru import logger
from pipecat.services.llm_service import FunctionCallParams

from parley.config import AgentConfig, HttpTool
from parley.egress import EgressPolicy, EgressRefused, fetch
from parley.settings import Settings
from pipelines.tools import MAX_RESPONSE_BYTES, MAX_RESULT_CHARS, http_handler
from tests.api.conftest import Tenant, api, conn, db_url, migrated_template, pg_server, world
from tests.fakes import FakeCloud, Rule, Script, ToolCallReply

__all__ = ["api", "conn", "db_url", "migrated_template", "pg_server", "world"]

FIFTY_MB = 50 * 1024 * 1024
BASE = {"name": "Attacker", "system_prompt": "Use your tools."}
# Names the tests' resolver answers (socket.getaddrinfo is patched): internal addresses.
INTERNAL = {"internal.example.test": "127.0.0.1", "metadata.example.test": "169.254.169.254"}


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    connections = 0
    sent = 0  # body bytes written

    def get_request(self) -> tuple[socket.socket, Any]:
        got = super().get_request()
        self.connections += 1
        return got

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # clients hanging up (cap, deadline) are the point of these tests


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, *args: Any) -> None:
        pass

    def _answer(self) -> None:
        url = urlparse(self.path)
        if url.path == "/big":  # no Content-Length: only the reader can stop it
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            chunk = b"x" * 65536
            while self.server.sent < FIFTY_MB:
                self.wfile.write(chunk)
                self.server.sent += len(chunk)
        elif url.path == "/trickle":
            self.send_response(200)
            self.send_header("Content-Length", "100")
            self.end_headers()
            for _ in range(50):
                self.wfile.write(b"x")
                self.wfile.flush()
                self.server.sent += 1
                time.sleep(0.2)
        elif url.path == "/redirect":
            self.send_response(302)
            self.send_header("Location", parse_qs(url.query)["to"][0])
            self.send_header("Content-Length", "0")
            self.end_headers()
        else:
            body = json.dumps({"secret": "internal data"}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    do_GET = do_POST = _answer


@dataclass
class Listener:
    server: _Server
    host: str

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.server.server_address[1]}"

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])


def _listen(host: str) -> Iterator[Listener]:
    server = _Server((host, 0), _Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield Listener(server, host)
    server.shutdown()
    server.server_close()


@pytest.fixture
def listener() -> Iterator[Listener]:
    """An internal service on loopback: what an attacker wants to reach."""
    yield from _listen("127.0.0.1")


@pytest.fixture
def other_listener() -> Iterator[Listener]:
    yield from _listen("127.0.0.2")  # also loopback, outside an allowed 127.0.0.1/32


@pytest.fixture(autouse=True)
def strict_operator(monkeypatch: pytest.MonkeyPatch) -> None:
    """The default policy: no allowed ranges (the test suite's 127.0.0.1 allowance removed)."""
    monkeypatch.setenv("PARLEY_EGRESS_ALLOW_CIDRS", "")


@pytest.fixture(autouse=True)
def internal_names(monkeypatch: pytest.MonkeyPatch) -> None:
    real = socket.getaddrinfo

    def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if host in INTERNAL or host == "llm.example.test":
            address = INTERNAL.get(host, "127.0.0.1")
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, int(port or 80)))]
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


@dataclass
class _Call:
    """What a tool handler reads from Pipecat's FunctionCallParams."""

    arguments: dict[str, Any]
    results: list[dict[str, Any]] = field(default_factory=list)

    async def result_callback(self, result: dict[str, Any], **_: Any) -> None:
        self.results.append(result)


def _policy(*cidrs: str) -> EgressPolicy:
    settings = Settings(egress_allow_cidrs=list(cidrs))  # type: ignore[call-arg]
    return EgressPolicy.from_settings(settings)


async def run_tool(url: str, policy: EgressPolicy, **tool: Any) -> dict[str, Any]:
    """One call of a stored config's HTTP tool, as the LLM would make it."""
    spec = {"type": "http", "name": "lookup", "description": "d", "url": url, **tool}
    call = _Call({"q": "x"})
    async with httpx.AsyncClient() as plain:  # what runtimes pass today
        agent = AgentConfig(name="a", system_prompt="p")
        handler = http_handler(HttpTool.model_validate(spec), plain, policy, agent)
        await asyncio.wait_for(handler(cast(FunctionCallParams, call)), 10)
    (result,) = call.results
    return result


# --- saving -------------------------------------------------------------------------------


def _tool(url: str) -> dict[str, Any]:
    return {"tools": [{"type": "http", "name": "t", "description": "d", "url": url}]}


@pytest.mark.parametrize(
    ("config", "field", "needle"),
    [
        (_tool("http://127.0.0.1:5432/"), "tools[0].url", "127.0.0.1 is a loopback address"),
        (
            _tool("http://169.254.169.254/latest/meta-data/iam/"),
            "tools[0].url",
            "the cloud metadata address",
        ),
        (_tool("http://[::ffff:a00:5]/admin"), "tools[0].url", "a private address"),
        (_tool("http://localhost:6379/"), "tools[0].url", "localhost is a loopback name"),
        (
            {"llm": {"provider": "openai", "base_url": "http://10.0.0.5:11434/v1", "model": "m"}},
            "llm.base_url",
            "10.0.0.5 is a private address",
        ),
        (
            {"tts": {"provider": "openai", "base_url": "http://127.1:8880/v1", "model": "k"}},
            "tts.base_url",
            "127.0.0.1 is a loopback address",  # 127.1, as pydantic normalises it
        ),
    ],
)
async def test_saving_a_literal_internal_url_is_422(
    api: httpx.AsyncClient,
    world: dict[str, Tenant],
    config: dict[str, Any],
    field: str,
    needle: str,
) -> None:
    r = await api.post("/v1/agents", json={**BASE, **config}, headers=world["A"].key_headers())
    assert r.status_code == 422, r.text
    error = r.json()["error"]
    assert error["code"] == "invalid_config"
    assert f"{field}" in error["message"] and needle in error["message"], error
    assert "PARLEY_EGRESS_ALLOW_CIDRS" in error["message"]


# --- the tool, through the API's chat --------------------------------------------------------


@pytest_asyncio.fixture
async def cloud(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[FakeCloud]:
    """The operator's LLM endpoint (OPENAI_BASE_URL), scripted to call the tools."""
    script = Script(
        rules=[
            Rule("look it up", ToolCallReply("lookup", {"q": "x"})),
            Rule("internal.example.test resolves", ToolCallReply("meta", {})),
            Rule("metadata.example.test resolves", "Both were blocked."),
        ],
        default="OK.",
    )
    async with FakeCloud(script) as started:
        monkeypatch.setenv("OPENAI_BASE_URL", started.openai_base_url)
        yield started


async def test_chat_tools_aimed_inside_get_a_policy_error(
    cloud: FakeCloud, listener: Listener, api: httpx.AsyncClient, world: dict[str, Tenant]
) -> None:
    logged: list[str] = []
    sink = logger.add(lambda m: logged.append(m.record["message"]), level="INFO")
    cfg = {
        **BASE,
        "llm": {"provider": "openai", "model": "m"},
        "tools": [
            {
                "type": "http",
                "name": "lookup",
                "description": "Look it up",
                "url": f"http://internal.example.test:{listener.port}/secret",
                "parameters": {"type": "object", "properties": {"q": {"type": "string"}}},
            },
            {
                "type": "http",
                "name": "meta",
                "description": "Metadata",
                "url": "http://metadata.example.test/latest/meta-data/iam/",
                "method": "GET",
            },
        ],
    }
    h = world["A"].key_headers()
    try:
        saved = await api.post("/v1/agents", json=cfg, headers=h)
        assert saved.status_code == 201, saved.text  # names are checked when connecting
        r = await api.post(
            f"/v1/agents/{saved.json()['id']}/chat", json={"message": "look it up"}, headers=h
        )
    finally:
        logger.remove(sink)
    assert r.status_code == 200, r.text
    assert r.json()["reply"] == "Both were blocked."
    results = [json.loads(req["messages"][-1]["content"]) for req in cloud.requests[1:]]
    assert results == [
        {
            "error": "refused by the egress policy: internal.example.test resolves to "
            "a loopback address"
        },
        {
            "error": "refused by the egress policy: metadata.example.test resolves to "
            "the cloud metadata address"
        },
    ]
    assert listener.server.connections == 0
    line = "tool lookup POST internal.example.test -> refused (a loopback address)"
    assert any(m.startswith(line) for m in logged), logged


async def test_agent_set_llm_url_inside_is_never_reached(
    cloud: FakeCloud, api: httpx.AsyncClient, world: dict[str, Tenant]
) -> None:
    cfg = {**BASE, "llm": {"provider": "openai", "model": "m", "base_url": ""}}
    cfg["llm"]["base_url"] = f"http://llm.example.test:{cloud.port}/v1"  # resolves to loopback
    h = world["A"].key_headers()
    saved = await api.post("/v1/agents", json=cfg, headers=h)
    assert saved.status_code == 201, saved.text
    r = await api.post(f"/v1/agents/{saved.json()['id']}/chat", json={"message": "hi"}, headers=h)
    assert r.status_code == 502 and r.json()["error"]["code"] == "llm_failed", r.text
    assert cloud.requests == []


# --- the tool, through the module --------------------------------------------------------------


async def test_loopback_and_metadata_literals_are_refused(listener: Listener) -> None:
    strict = _policy()
    result = await run_tool(f"{listener.url}/secret", strict)
    assert result == {"error": "refused by the egress policy: 127.0.0.1 is a loopback address"}
    started = time.monotonic()
    result = await run_tool("http://169.254.169.254/latest/meta-data/", strict, timeout_secs=5)
    assert result == {
        "error": "refused by the egress policy: 169.254.169.254 is the cloud metadata address"
    }
    assert time.monotonic() - started < 0.5  # refused before any connection attempt
    assert listener.server.connections == 0


async def test_names_resolving_inside_are_refused_when_connecting(listener: Listener) -> None:
    strict = _policy()
    for url, needle in [
        (f"http://localhost:{listener.port}/", "localhost is a loopback name"),
        (f"http://internal.example.test:{listener.port}/", "resolves to a loopback address"),
    ]:
        result = await run_tool(url, strict)
        assert needle in result["error"], result
    assert listener.server.connections == 0


async def test_an_allowed_range_lets_it_through(listener: Listener) -> None:
    result = await run_tool(f"{listener.url}/secret", _policy("127.0.0.1/32"))
    assert result == {"status": 200, "data": {"secret": "internal data"}}
    assert listener.server.connections == 1


async def test_a_50_mb_answer_is_cut_at_the_cap_with_bounded_memory(listener: Listener) -> None:
    tracemalloc.start()
    try:
        got = await fetch(
            f"{listener.url}/big",
            _policy("127.0.0.1/32"),
            max_bytes=MAX_RESPONSE_BYTES,
            truncate=True,
        )
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert got.truncated and len(got.body) == MAX_RESPONSE_BYTES
    # The server could only write what the socket buffers hold before the client hung up.
    await asyncio.sleep(0.2)
    sent = listener.server.sent
    print(f"50 MB answer: read {len(got.body)} B, server wrote {sent} B, peak {peak} B")
    assert sent < FIFTY_MB / 4, sent
    assert peak < 4 * MAX_RESPONSE_BYTES, peak
    # Through the tool: what the LLM sees is cut again, to MAX_RESULT_CHARS.
    result = await run_tool(f"{listener.url}/big", _policy("127.0.0.1/32"), method="GET")
    assert result["status"] == 200 and result["truncated"] is True
    assert len(result["data"]) == MAX_RESULT_CHARS


async def test_a_trickle_is_cut_at_the_total_deadline(listener: Listener) -> None:
    started = time.monotonic()
    result = await run_tool(f"{listener.url}/trickle", _policy("127.0.0.1/32"), timeout_secs=1)
    elapsed = time.monotonic() - started
    print(f"trickle: cut after {elapsed:.2f} s (deadline 1 s)")
    assert result == {"error": "the service did not answer within 1 s"}
    assert 0.95 <= elapsed < 1.5, elapsed  # one deadline, not a timeout per byte


async def test_redirects_inside_are_refused(listener: Listener, other_listener: Listener) -> None:
    allow = _policy("127.0.0.1/32")  # the first hop is allowed, the targets are not
    for target, needle in [
        (f"{other_listener.url}/secret", "127.0.0.2 is a loopback address"),
        ("http://169.254.169.254/latest/", "169.254.169.254 is the cloud metadata address"),
        (f"http://internal.example.test:{other_listener.port}/", "resolves to a loopback"),
    ]:
        internal = INTERNAL["internal.example.test"]
        INTERNAL["internal.example.test"] = "127.0.0.2"
        try:
            result = await run_tool(f"{listener.url}/redirect?to={target}", allow, method="GET")
        finally:
            INTERNAL["internal.example.test"] = internal
        assert needle in result["error"], result
    assert other_listener.server.connections == 0
    assert listener.server.connections == 3


async def test_the_connection_goes_to_the_address_that_was_checked(
    listener: Listener, other_listener: Listener
) -> None:
    answers = [["127.0.0.1"], ["127.0.0.2"]]  # a rebinding DNS server: allowed, then inside
    asked: list[str] = []

    async def rebinding(host: str, port: int) -> list[str]:
        asked.append(host)
        return answers[min(len(asked), 2) - 1]

    got = await fetch(
        f"http://rebind.example.test:{listener.port}/secret",
        _policy("127.0.0.1/32"),
        resolver=rebinding,
    )
    assert got.status == 200 and asked == ["rebind.example.test"]
    assert listener.server.connections == 1 and other_listener.server.connections == 0

    # Every address of an answer is checked, not just the first.
    async def mixed(host: str, port: int) -> list[str]:
        return ["127.0.0.1", "127.0.0.2"]

    with pytest.raises(EgressRefused, match="resolves to a loopback address"):
        await fetch(
            f"http://rebind.example.test:{listener.port}/", _policy("127.0.0.1/32"), resolver=mixed
        )
    assert listener.server.connections == 1
