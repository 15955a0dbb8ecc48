"""Parley's own processes inside the test namespace, and the rows the end-to-end tests seed and
read: what the worker, peer-to-peer and browser tests share.

    seeded = asyncio.run(seed(db_url, clinic_agent(LLM_PORT)))  # org, agent, API key
    env = parley_env(db_url, tmp_path, livekit_stack, agent_name="e2e-agent")  # None: embedded
    start_fake_llm(ns_process, LLM_PORT)        # answers QUESTION with ANSWER
    api = start_api(ns_process, env)            # parley serve on 10.213.0.1:8000
    worker = start_worker(ns_process, env)      # parley worker, models prewarmed
    call = wait_call_ended(db_url, call_id)     # the call row, its turns under "turns"
    check_hung_up(call, seeded)                 # completed when the caller left

``ns_process`` is the conftest's factory; each process is stopped after the test.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from api.keys import new_key
from parley.db import connect
from tests.livekit.stack import API_PORT, LiveKitStack, NsProcess
from tests.netns import HOST_A

NsFactory = Callable[..., NsProcess]

QUESTION = "How much does a check-up cost?"
ANSWER = "A check-up costs eighty dollars."
GREETING = "Hello, you are through to the clinic."


def clinic_agent(llm_port: int) -> dict[str, Any]:
    """A receptionist on the local STT/TTS and the fake LLM of ``start_fake_llm(.., llm_port)``."""
    return {
        "name": "Clinic receptionist",
        "system_prompt": "You are the receptionist of a dental clinic. Answer briefly.",
        "greeting": GREETING,
        "stt": {"provider": "local"},
        "llm": {"provider": "openai", "base_url": f"http://127.0.0.1:{llm_port}/v1", "model": "m"},
        "tts": {"provider": "local"},
        "turns": {"vad_stop_secs": 0.4},
    }


# -- the database ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Seeded:
    org_id: uuid.UUID
    agent_id: uuid.UUID
    key: str  # an API key of the organization (pk_...)


async def seed(db_url: str, agent: dict[str, Any]) -> Seeded:
    """A new organization with ``agent`` (an AgentConfig as a dict) and an API key."""
    conn = await connect(db_url)
    try:
        org = await conn.fetchval(
            "insert into public.organizations (name) values ('e2e') returning id"
        )
        agent_id = await conn.fetchval(
            "insert into public.agents (org_id, config) values ($1, $2) returning id",
            org,
            json.dumps(agent),
        )
        key = new_key()
        await conn.execute(
            "insert into public.api_keys (org_id, name, prefix, key_hash) values ($1,'e2e',$2,$3)",
            org,
            key.prefix,
            key.hash,
        )
    finally:
        await conn.close()
    return Seeded(org, agent_id, key.token)


async def query(db_url: str, sql: str, *args: Any) -> list[dict[str, Any]]:
    """Rows of one query, on a connection of its own (the tests' database is a Unix socket)."""
    conn = await connect(db_url)
    try:
        return [dict(r) for r in await conn.fetch(sql, *args)]
    finally:
        await conn.close()


async def call_rows(db_url: str, call_id: str | uuid.UUID) -> dict[str, Any]:
    """The call's row, with its turns in order under ``"turns"``."""
    call_id = uuid.UUID(str(call_id))
    calls = await query(db_url, "select * from public.calls where id = $1", call_id)
    assert calls, f"no call {call_id}"
    turns = await query(
        db_url, "select * from public.call_turns where call_id = $1 order by idx", call_id
    )
    return {**calls[0], "turns": turns}


def wait_call_ended(db_url: str, call_id: str | uuid.UUID, timeout: float = 30.0) -> dict[str, Any]:
    """``call_rows`` once the call is completed or failed (or as it is after ``timeout``)."""
    deadline = time.monotonic() + timeout
    while True:
        call = asyncio.run(call_rows(db_url, call_id))
        if call["status"] in ("completed", "failed") or time.monotonic() > deadline:
            return call
        time.sleep(0.2)


def check_hung_up(call: dict[str, Any], seeded: Seeded) -> list[tuple[str, str]]:
    """Assert that ``call`` (from ``wait_call_ended``) is a web call of ``seeded``'s organization,
    answered, opened with the clinic's greeting, and completed when the caller left; returns its
    turns as (role, text)."""
    assert call["status"] == "completed" and call["end_reason"] == "user_left", call
    assert call["org_id"] == seeded.org_id and call["direction"] == "web", call
    assert call["answered_at"] is not None and call["ended_at"] >= call["answered_at"], call
    roles = [(t["role"], t["text"]) for t in call["turns"]]
    assert roles[0] == ("assistant", GREETING), roles
    return roles


# -- processes ---------------------------------------------------------------------------------


def api_url(port: int = API_PORT) -> str:
    return f"http://{HOST_A}:{port}"


def parley_env(
    db_url: str,
    tmp_path: Path,
    livekit: LiveKitStack | None = None,
    *,
    agent_name: str = "e2e-agent",
) -> dict[str, str]:
    """The environment of ``parley serve`` and ``parley worker``: LiveKit mode with ``livekit``
    (the worker registers as ``agent_name``), embedded peer-to-peer mode without."""
    env = {
        "DATABASE_URL": db_url,
        "PARLEY_DATA_DIR": str(tmp_path / "data"),
        "OPENAI_API_KEY": "test-key",
    }
    if livekit is None:
        return {**env, "LIVEKIT_URL": ""}  # embedded mode, whatever the environment says
    return {**livekit.env(), **env, "PARLEY_LIVEKIT_AGENT_NAME": agent_name}


def start_fake_llm(
    ns_process: NsFactory, port: int, rules: Sequence[str] = (f"check={ANSWER}",)
) -> NsProcess:
    """The OpenAI-compatible stand-in (``tests.fakes.serve``); ``rules``: ``word=reply``."""
    argv = [".venv/bin/python", "-m", "tests.fakes.serve", "--port", str(port)]
    for rule in rules:
        argv += ["--rule", rule]
    return ns_process(argv, name="llm", ready_log="ready")


def start_api(ns_process: NsFactory, env: dict[str, str], port: int = API_PORT) -> NsProcess:
    """``parley serve`` on ``api_url(port)``, once it answers /healthz."""
    return ns_process(
        [".venv/bin/parley", "serve", "--host", HOST_A, "--port", str(port)],
        name="api",
        env=env,
        ready_url=f"{api_url(port)}/healthz",
        timeout=60,
    )


def start_worker(
    ns_process: NsFactory,
    env: dict[str, str],
    *,
    max_jobs: int = 2,
    prewarm: bool = True,
    threads: bool = False,
) -> NsProcess:
    """``parley worker`` registered with LiveKit; with ``prewarm``, also once its idle job
    process has loaded the models (so a call's timing is not the models' loading)."""
    argv = [".venv/bin/parley", "worker", "--max-jobs", str(max_jobs), "--idle-processes", "1"]
    worker = ns_process(
        [*argv, *(["--threads"] if threads else [])],
        name="worker",
        env=env,
        ready_log="registered worker",
        timeout=120,
    )
    if prewarm:
        worker.wait_log("job process ready", timeout=120)
    return worker
