"""The voice tutor page in a real browser, in both modes: headless Chromium with a fake
microphone opens ``/tutor``, joins, and talks to the agent
- embedded mode: peer-to-peer to the agent inside the API process (``parley serve`` without
  LiveKit settings);
- LiveKit mode: in the room the API made (livekit-client from npm), with the agent the worker
  runs there (livekit-server + Redis, ``parley serve`` with the LiveKit settings, ``parley
  worker``); the page's events come over the room's data channel.

Everything runs inside the test's network namespace, with an OpenAI-compatible LLM stand-in;
the browser is Playwright, run as a process inside (``tests.livekit.clients.browser_tutor``
reports what the page showed). The page must show the greeting, the user's question and the
agent's answer as captions, the agent's state changes and the turn's latency; hanging up ends
the call. A screenshot of each mode is kept in ``artifacts/``.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from parley.db.testing import db_url, migrated_template, pg_server
from tests.livekit.parley_stack import (
    QUESTION,
    Seeded,
    api_url,
    clinic_agent,
    parley_env,
    seed,
    start_api,
    start_fake_llm,
    start_worker,
    wait_call_ended,
)
from tests.livekit.stack import ROOT, LiveKitStack, NsProcess
from tests.netns import Namespace

__all__ = ["db_url", "migrated_template", "pg_server"]
pytestmark = pytest.mark.e2e

P2P_API_PORT = 8002
P2P_LLM_PORT = 8092
LIVEKIT_LLM_PORT = 8093


def test_tutor_page_peer_to_peer(
    netns: Namespace,
    ns_process: Callable[..., NsProcess],
    ns_client: Callable[..., Any],
    db_url: str,
    tmp_path: Path,
    speak: Callable[[str], Path],
) -> None:
    seeded = asyncio.run(seed(db_url, clinic_agent(P2P_LLM_PORT)))
    start_fake_llm(ns_process, P2P_LLM_PORT)
    api = start_api(ns_process, parley_env(db_url, tmp_path), P2P_API_PORT)
    talk_on_tutor_page(
        netns, ns_client, speak, db_url, api_url(P2P_API_PORT), seeded, mode="p2p",
        extra_args=["--warmup"],
    )  # fmt: skip
    assert "Traceback" not in api.log()


def test_tutor_page_in_a_livekit_room(
    livekit_stack: LiveKitStack,
    ns_process: Callable[..., NsProcess],
    ns_client: Callable[..., Any],
    db_url: str,
    tmp_path: Path,
    speak: Callable[[str], Path],
) -> None:
    seeded = asyncio.run(seed(db_url, clinic_agent(LIVEKIT_LLM_PORT)))
    env = parley_env(db_url, tmp_path, livekit_stack, agent_name="browser-agent")
    start_fake_llm(ns_process, LIVEKIT_LLM_PORT)
    api = start_api(ns_process, env)  # on port 8000, where the stack's webhooks go
    worker = start_worker(ns_process, env)
    # The agent joins the room after the page: more silence before the question, so the
    # greeting is over when it comes.
    talk_on_tutor_page(
        livekit_stack.ns, ns_client, speak, db_url, api_url(), seeded, mode="livekit",
        extra_args=["--lead-secs", "7"],
    )  # fmt: skip
    assert "Traceback" not in worker.log() and "Traceback" not in api.log()


def talk_on_tutor_page(
    ns: Namespace,
    ns_client: Callable[..., Any],
    speak: Callable[[str], Path],
    db_url: str,
    api: str,
    seeded: Seeded,
    *,
    mode: str,
    extra_args: Sequence[str] = (),
) -> None:
    """The API serves ``/tutor``; a browser on it asks QUESTION in ``mode`` and the page shows
    what it must (``check_page``); hanging up completed the call. The screenshot is kept as
    ``artifacts/tutor-<mode>.png``."""
    status, page = ns.http("GET", f"{api}/tutor")
    assert status == 200, f"/tutor answered {status}: {page}"
    screenshot = ROOT / "artifacts" / f"tutor-{mode}.png"
    out = ns_client(
        "tests.livekit.clients.browser_tutor",
        [
            "--url", f"{api}/tutor?raw=1&debug=1&agent={seeded.agent_id}",
            "--wav", str(speak(QUESTION)),
            "--expect", "eighty",
            "--screenshot", str(screenshot),
            *extra_args,
        ],
        env={"PARLEY_TEST_API_KEY": seeded.key},
        timeout=180,
    )  # fmt: skip
    print("browser:", json.dumps(out["timings"]), out["shown"]["latency_last"])
    assert out["shown"]["body"]["mode"] == mode, out["shown"]["body"]
    check_page(out, "check", "eighty")
    assert screenshot.is_file() and screenshot.stat().st_size > 10_000

    call = wait_call_ended(db_url, out["shown"]["body"]["callId"])
    assert call["status"] == "completed" and call["end_reason"] == "user_left", call


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
