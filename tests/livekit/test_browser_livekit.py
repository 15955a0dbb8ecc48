"""The voice tutor page in a real browser, LiveKit mode: headless Chromium with a fake
microphone opens ``/tutor``, joins the room the API made (livekit-client from npm), and talks
to the agent the worker runs in that room.

Inside the test's network namespace: livekit-server + Redis, ``parley serve`` with the LiveKit
settings, ``parley worker``, an OpenAI-compatible LLM stand-in, and the browser (Playwright, as
a process inside). The page must show the captions of both sides, the agent's states and the
turn's latency, all received over the room's data channel; hanging up ends the call. A
screenshot is kept in ``artifacts/``.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from parley.db.testing import db_url, migrated_template, pg_server
from tests.livekit.browser_support import (
    ANSWER,
    QUESTION,
    agent_config,
    check_page,
    seed,
    wait_ended,
)
from tests.livekit.stack import ROOT, LiveKitStack, NsProcess

__all__ = ["db_url", "migrated_template", "pg_server"]
pytestmark = pytest.mark.e2e

API = "http://10.213.0.1:8000"  # where the stack's webhooks go
LLM_PORT = 8093


def test_tutor_page_in_a_livekit_room(
    livekit_stack: LiveKitStack,
    ns_process: Callable[..., NsProcess],
    ns_client: Callable[..., Any],
    db_url: str,
    tmp_path: Path,
    speak: Callable[[str], Path],
) -> None:
    agent_id, key = asyncio.run(seed(db_url, agent_config(LLM_PORT)))
    env = {
        **livekit_stack.env(),
        "DATABASE_URL": db_url,
        "PARLEY_DATA_DIR": str(tmp_path / "data"),
        "PARLEY_LIVEKIT_AGENT_NAME": "browser-agent",
        "OPENAI_API_KEY": "test-key",
    }
    ns_process(
        [".venv/bin/python", "-m", "tests.fakes.serve", "--port", str(LLM_PORT),
         "--rule", "check=" + ANSWER],
        name="llm",
        ready_log="ready",
    )  # fmt: skip
    api = ns_process(
        [".venv/bin/parley", "serve", "--host", "10.213.0.1", "--port", "8000"],
        name="api",
        env=env,
        ready_url=f"{API}/healthz",
        timeout=60,
    )
    status, page = livekit_stack.ns.http("GET", f"{API}/tutor")
    assert status == 200, f"/tutor answered {status}: {page}"
    worker = ns_process(
        [".venv/bin/parley", "worker", "--max-jobs", "2", "--idle-processes", "1"],
        name="worker",
        env=env,
        ready_log="registered worker",
        timeout=120,
    )
    worker.wait_log("job process ready", timeout=120)  # models prewarmed before the call

    screenshot = ROOT / "artifacts" / "tutor-livekit.png"
    out = ns_client(
        "tests.livekit.clients.browser_tutor",
        # The agent joins the room after the page: more silence before the question, so the
        # greeting is over when it comes.
        ["--url", f"{API}/tutor?raw=1&debug=1&agent={agent_id}", "--wav", str(speak(QUESTION)),
         "--expect", "eighty", "--screenshot", str(screenshot), "--lead-secs", "7"],
        env={"PARLEY_TEST_API_KEY": key},
        timeout=180,
    )  # fmt: skip
    print("browser:", json.dumps(out["timings"]), out["shown"]["latency_last"])
    assert out["shown"]["body"]["mode"] == "livekit", out["shown"]["body"]
    check_page(out, "check", "eighty")
    assert screenshot.is_file() and screenshot.stat().st_size > 10_000

    call = wait_ended(db_url, out["shown"]["body"]["callId"])
    assert call["status"] == "completed" and call["end_reason"] == "user_left", call
    assert "Traceback" not in worker.log() and "Traceback" not in api.log()
