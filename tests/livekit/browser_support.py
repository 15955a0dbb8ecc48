"""What both browser tests of the tutor page share: the agent, its seeding, the call row, and
what the page must have shown (``tests.livekit.clients.browser_tutor`` reports it)."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from typing import Any

from api.keys import new_key
from parley.db import connect

QUESTION = "How much does a check-up cost?"
ANSWER = "A check-up costs eighty dollars."
GREETING = "Hello, you are through to the clinic."


def agent_config(llm_port: int) -> dict[str, Any]:
    return {
        "name": "Clinic receptionist",
        "system_prompt": "You are the receptionist of a dental clinic. Answer briefly.",
        "greeting": GREETING,
        "stt": {"provider": "local"},
        "llm": {"provider": "openai", "base_url": f"http://127.0.0.1:{llm_port}/v1", "model": "m"},
        "tts": {"provider": "local"},
        "turns": {"vad_stop_secs": 0.4},
    }


async def seed(db_url: str, agent: dict[str, Any]) -> tuple[str, str]:
    """(agent id, API key) of a new organization."""
    conn = await connect(db_url)
    try:
        org = await conn.fetchval(
            "insert into public.organizations (name) values ('browser') returning id"
        )
        agent_id = await conn.fetchval(
            "insert into public.agents (org_id, config) values ($1, $2) returning id",
            org,
            json.dumps(agent),
        )
        key = new_key()
        await conn.execute(
            "insert into public.api_keys (org_id, name, prefix, key_hash)"
            " values ($1, 'browser', $2, $3)",
            org,
            key.prefix,
            key.hash,
        )
    finally:
        await conn.close()
    return str(agent_id), key.token


async def _call_row(db_url: str, call_id: str) -> dict[str, Any]:
    conn = await connect(db_url)
    try:
        row = await conn.fetchrow("select * from public.calls where id = $1", uuid.UUID(call_id))
    finally:
        await conn.close()
    assert row is not None
    return dict(row)


def wait_ended(db_url: str, call_id: str, timeout: float = 30.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        call = asyncio.run(_call_row(db_url, call_id))
        if call["status"] in ("completed", "failed") or time.monotonic() > deadline:
            return call
        time.sleep(0.2)


def check_page(out: dict[str, Any], question_word: str, answer_word: str) -> None:
    """What a student must see: captions of both sides, states, latency, a clean hang-up."""
    shown = out["shown"]
    captions = shown["captions"]
    agent = [c["text"].lower() for c in captions if c["role"] == "agent"]
    user = [c["text"].lower() for c in captions if c["role"] == "user"]
    assert any("clinic" in a for a in agent), captions  # the greeting
    assert any(question_word in u for u in user), captions
    assert any(answer_word in a for a in agent), captions
    assert all(c["final"] for c in captions), captions  # interim captions were replaced
    # The agent's state followed the conversation.
    states = [c["value"] for c in shown["changes"] if c["attr"] == "data-agent-state"]
    for state in ("listening", "thinking", "speaking"):
        assert state in states, states
    body = shown["body"]
    assert body["callState"] == "connected" and body["botReady"] == "true", body
    assert body["micHeard"] == "true" and body["agentHeard"] == "true", body
    # The reply's latency: in the history, and on the reply's caption.
    assert shown["latency"], shown
    v2v = int(shown["latency"][0]["voice_to_voice_ms"])
    assert 0 < v2v < 10_000, shown["latency"]
    assert any(c["latency"] for c in captions if c["role"] == "agent"), captions
    assert out["ended"]["callState"] == "ended" and out["ended"]["endReason"] == "hangup", out
    assert not out["console_errors"], out["console_errors"]
