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
import re
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from parley.db.testing import db_url, migrated_template, pg_server
from tests.livekit.parley_stack import (
    QUESTION,
    api_url,
    check_hung_up,
    clinic_agent,
    parley_env,
    query,
    seed,
    start_api,
    start_fake_llm,
    start_worker,
    wait_call_ended,
)
from tests.livekit.stack import LiveKitStack, NsProcess

__all__ = ["db_url", "migrated_template", "pg_server"]
pytestmark = pytest.mark.e2e

API = api_url()  # port 8000: where the stack's webhooks go
LLM_PORT = 8090


def test_caller_hears_the_answer_and_the_call_is_recorded(
    livekit_stack: LiveKitStack,
    ns_process: Callable[..., NsProcess],
    ns_client: Callable[..., Any],
    db_url: str,
    tmp_path: Path,
    speak: Callable[[str], Path],
    transcribe: Callable[[Path], str],
) -> None:
    seeded = asyncio.run(seed(db_url, clinic_agent(LLM_PORT)))
    env = parley_env(db_url, tmp_path, livekit_stack, agent_name="e2e-agent")
    start_fake_llm(ns_process, LLM_PORT)
    api = start_api(ns_process, env)
    worker = start_worker(ns_process, env)  # models prewarmed before the call

    out = ns_client(
        "tests.livekit.clients.room_caller",
        [
            "--api",
            API,
            "--key",
            seeded.key,
            "--agent-id",
            str(seeded.agent_id),
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

    call = wait_call_ended(db_url, call_id, timeout=20)
    roles = check_hung_up(call, seeded)
    turns = call["turns"]
    timings = ("stt_final_ms", "llm_first_token_ms", "tts_first_audio_ms", "voice_to_voice_ms")
    print("turns:", [(t["role"], t["text"][:40], *(t[k] for k in timings)) for t in turns])
    user = [t for t in turns if t["role"] == "user"]
    assert user and "check" in user[0]["text"].lower(), roles
    reply = next(t for t in turns if t["role"] == "assistant" and t["idx"] > user[0]["idx"])
    assert "eighty" in reply["text"].lower() and reply["voice_to_voice_ms"] is not None
    # The API got LiveKit's signed webhooks for the room, each applied once.
    sql = "select event from private.livekit_webhook_events where room_name = $1"
    events = [r["event"] for r in asyncio.run(query(db_url, sql, call["room_name"]))]
    assert {"room_started", "participant_joined"} <= set(events), events
    # The agent reports when the greeting started against the server's join time (bench/greeting.py
    # reads it): one call, one line, a sane number (the caller heard it within greeting_ms).
    started = re.findall(r"call=(\S+) .*greeting started (-?\d+) ms after the caller joined",
                         worker.log())  # fmt: skip
    assert [c for c, _ in started] == [call_id], worker.log_tail()
    assert 0 < int(started[0][1]) < 5000, started
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
    seeded = asyncio.run(seed(db_url, clinic_agent(LLM_PORT)))
    env = parley_env(db_url, tmp_path, livekit_stack, agent_name="capped-agent")
    start_api(ns_process, env)
    worker = start_worker(ns_process, env, max_jobs=1, prewarm=False)

    def session() -> tuple[int, Any]:
        status, body = netns.http(
            "POST",
            f"{API}/v1/sessions/web",
            json_body={"agent_id": str(seeded.agent_id)},
            headers={"Authorization": f"Bearer {seeded.key}"},
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
    rows = asyncio.run(query(db_url, "select id, status, end_reason from public.calls"))
    calls = {str(r["id"]): (r["status"], r["end_reason"]) for r in rows}
    assert calls[first["call_id"]] == ("created", None)
    assert ("failed", "no_agent") in calls.values(), calls


def test_threads_worker_serves_two_calls_at_once(
    livekit_stack: LiveKitStack,
    ns_process: Callable[..., NsProcess],
    ns_client: Callable[..., Any],
    db_url: str,
    tmp_path: Path,
    speak: Callable[[str], Path],
    transcribe: Callable[[Path], str],
) -> None:
    """``--threads``: both calls run on the worker process's one call loop, at the same time,
    and each caller hears its own answer."""
    seeded = asyncio.run(seed(db_url, clinic_agent(LLM_PORT)))
    env = parley_env(db_url, tmp_path, livekit_stack, agent_name="threads-agent")
    start_fake_llm(ns_process, LLM_PORT)
    start_api(ns_process, env)
    worker = start_worker(ns_process, env, threads=True)

    def call(n: int) -> Any:
        args = ["--api", API, "--key", seeded.key, "--agent-id", str(seeded.agent_id),
                "--wav", str(speak(QUESTION)), "--out", str(tmp_path / f"heard-{n}.wav"),
                "--expect-greeting", "--hang-up"]  # fmt: skip
        return ns_client("tests.livekit.clients.room_caller", args, timeout=150)

    with ThreadPoolExecutor(2) as pool:
        outs = list(pool.map(call, range(2)))
    assert all(out["reply_heard"] for out in outs), outs
    for n in range(2):
        heard = transcribe(tmp_path / f"heard-{n}.wav").lower()
        assert "eighty" in heard or "80" in heard, heard
    calls = [wait_call_ended(db_url, out["session"]["call_id"], timeout=20) for out in outs]
    assert [c["status"] for c in calls] == ["completed", "completed"], calls
    # One worker process served both: its jobs ran as threads, never as new processes.
    assert worker.log().count("received job request") == 2, worker.log_tail()
    assert "Traceback" not in worker.log(), worker.log_tail()
