"""A browser-like caller talks to an agent in a real LiveKit room, end to end.

Inside the test's network namespace: livekit-server + Redis, the API (``parley serve``), the
worker (``parley worker``) and an OpenAI-compatible LLM stand-in. The caller (Python
``livekit`` client) asks the API for a web session, joins the room it names, hears the
greeting, speaks a synthesized question and records the agent's answer. The recording is
transcribed with Whisper; the call row and its turns must be in the database.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from api.keys import new_key
from parley.db import connect
from parley.db.testing import db_url, migrated_template, pg_server
from tests.livekit.stack import LiveKitStack, NsProcess

__all__ = ["db_url", "migrated_template", "pg_server"]
pytestmark = pytest.mark.e2e

API = "http://10.213.0.1:8000"
LLM_PORT = 8090
QUESTION = "How much does a check-up cost?"
ANSWER = "A check-up costs eighty dollars."
AGENT = {
    "name": "Clinic receptionist",
    "system_prompt": "You are the receptionist of a dental clinic. Answer briefly.",
    "greeting": "Hello, you are through to the clinic.",
    "stt": {"provider": "local"},
    "llm": {"provider": "openai", "base_url": f"http://127.0.0.1:{LLM_PORT}/v1", "model": "m"},
    "tts": {"provider": "local"},
    "turns": {"vad_stop_secs": 0.4},
}


async def _seed(db_url: str) -> tuple[str, str, str]:
    """(org id, agent id, API key) in a fresh database."""
    conn = await connect(db_url)
    try:
        org = await conn.fetchval(
            "insert into public.organizations (name) values ('e2e') returning id"
        )
        agent = await conn.fetchval(
            "insert into public.agents (org_id, config) values ($1, $2) returning id",
            org,
            json.dumps(AGENT),
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
    return str(org), str(agent), key.token


async def _rows(db_url: str, call_id: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    conn = await connect(db_url)
    try:
        call = await conn.fetchrow("select * from public.calls where id = $1", uuid.UUID(call_id))
        turns = await conn.fetch(
            "select * from public.call_turns where call_id = $1 order by idx", uuid.UUID(call_id)
        )
    finally:
        await conn.close()
    assert call is not None
    return dict(call), [dict(t) for t in turns]


async def _calls(db_url: str) -> dict[str, tuple[str, str | None]]:
    conn = await connect(db_url)
    try:
        rows = await conn.fetch("select id, status, end_reason from public.calls")
    finally:
        await conn.close()
    return {str(r["id"]): (r["status"], r["end_reason"]) for r in rows}


async def _webhook_events(db_url: str, room: str) -> list[str]:
    conn = await connect(db_url)
    try:
        rows = await conn.fetch(
            "select event from private.livekit_webhook_events where room_name = $1", room
        )
    finally:
        await conn.close()
    return [r["event"] for r in rows]


def _wait_ended(db_url: str, call_id: str, timeout: float = 20.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        call, _ = asyncio.run(_rows(db_url, call_id))
        if call["status"] in ("completed", "failed") or time.monotonic() > deadline:
            return call
        time.sleep(0.2)


def test_caller_hears_the_answer_and_the_call_is_recorded(
    livekit_stack: LiveKitStack,
    ns_process: Callable[..., NsProcess],
    ns_client: Callable[..., Any],
    db_url: str,
    tmp_path: Path,
    speak: Callable[[str], Path],
    transcribe: Callable[[Path], str],
) -> None:
    org_id, agent_id, key = asyncio.run(_seed(db_url))
    env = {
        **livekit_stack.env(),
        "DATABASE_URL": db_url,
        "PARLEY_DATA_DIR": str(tmp_path / "data"),
        "PARLEY_LIVEKIT_AGENT_NAME": "e2e-agent",
        "OPENAI_API_KEY": "test-key",
    }
    ns_process(
        [
            ".venv/bin/python",
            "-m",
            "tests.fakes.serve",
            "--port",
            str(LLM_PORT),
            "--rule",
            "check=" + ANSWER,
        ],
        name="llm",
        ready_log="ready",
    )
    api = ns_process(
        [".venv/bin/parley", "serve", "--host", "10.213.0.1", "--port", "8000"],
        name="api",
        env=env,
        ready_url=f"{API}/healthz",
        timeout=60,
    )
    worker = ns_process(
        [".venv/bin/parley", "worker", "--max-jobs", "2", "--idle-processes", "1"],
        name="worker",
        env=env,
        ready_log="registered worker",
        timeout=120,
    )
    worker.wait_log("job process ready", timeout=120)  # models prewarmed before the call

    out = ns_client(
        "tests.livekit.clients.room_caller",
        [
            "--api",
            API,
            "--key",
            key,
            "--agent-id",
            agent_id,
            "--wav",
            str(speak(QUESTION)),
            "--out",
            str(tmp_path / "heard.wav"),
            "--expect-greeting",
            "--hang-up",
        ],
        timeout=120,
    )
    print("caller:", json.dumps(out))  # greeting_ms and voice_to_voice_ms, for the log
    call_id = out["session"]["call_id"]
    assert out["session"]["mode"] == "livekit" and out["agent_identity"].startswith("parley-")
    assert out["greeting_ms"] is not None and out["reply_heard"], out
    heard = transcribe(tmp_path / "heard.wav").lower()
    assert "eighty" in heard or "80" in heard, heard

    call = _wait_ended(db_url, call_id)
    assert call["status"] == "completed" and call["end_reason"] == "user_left", call
    assert str(call["org_id"]) == org_id and call["direction"] == "web"
    assert call["answered_at"] is not None and call["ended_at"] >= call["answered_at"]
    _, turns = asyncio.run(_rows(db_url, call_id))
    roles = [(t["role"], t["text"]) for t in turns]
    assert roles[0] == ("assistant", AGENT["greeting"]), roles
    user = [t for t in turns if t["role"] == "user"]
    assert user and "check" in user[0]["text"].lower(), roles
    reply = next(t for t in turns if t["role"] == "assistant" and t["idx"] > user[0]["idx"])
    assert "eighty" in reply["text"].lower() and reply["voice_to_voice_ms"] is not None
    # The API got LiveKit's signed webhooks for the room, each applied once.
    events = asyncio.run(_webhook_events(db_url, call["room_name"]))
    assert {"room_started", "participant_joined"} <= set(events), events
    assert "Traceback" not in worker.log() and "Traceback" not in api.log()


def test_a_full_worker_takes_no_more_jobs(
    livekit_stack: LiveKitStack,
    ns_process: Callable[..., NsProcess],
    netns: Any,
    db_url: str,
    tmp_path: Path,
) -> None:
    """``--max-jobs 1``: while one call runs, the worker reports itself full, LiveKit does not
    hand it a second job, and the API answers that session with 503 (its call failed)."""
    _, agent_id, key = asyncio.run(_seed(db_url))
    env = {
        **livekit_stack.env(),
        "DATABASE_URL": db_url,
        "PARLEY_DATA_DIR": str(tmp_path / "data"),
        "PARLEY_LIVEKIT_AGENT_NAME": "capped-agent",
        "OPENAI_API_KEY": "test-key",
    }
    ns_process(
        [".venv/bin/parley", "serve", "--host", "10.213.0.1", "--port", "8000"],
        name="api",
        env=env,
        ready_url=f"{API}/healthz",
        timeout=60,
    )
    worker = ns_process(
        [".venv/bin/parley", "worker", "--max-jobs", "1", "--idle-processes", "1"],
        name="worker",
        env=env,
        ready_log="registered worker",
        timeout=120,
    )

    def session() -> tuple[int, Any]:
        status, body = netns.http(
            "POST",
            f"{API}/v1/sessions/web",
            json_body={"agent_id": agent_id},
            headers={"Authorization": f"Bearer {key}"},
            timeout=30,
        )
        return status, body

    # The first call's job holds the only slot while it waits for its caller (nobody joins).
    status, first = session()
    assert status == 201 and first["mode"] == "livekit", first
    time.sleep(3)  # the worker reports its load every 0.5 s, its status every 2.5 s
    status, second = session()
    # LiveKit offered the job to no one (the worker said it was full): the API gave up on it.
    assert status == 503 and second["error"]["code"] == "agent_unavailable", second
    assert worker.log().count("received job request") == 1, worker.log_tail()
    conn_rows = asyncio.run(_calls(db_url))
    assert conn_rows[first["call_id"]] == ("created", None)
    assert ("failed", "no_agent") in conn_rows.values(), conn_rows
