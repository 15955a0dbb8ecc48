"""The voice tutor page in a real browser, embedded mode: headless Chromium with a fake
microphone opens ``/tutor``, joins, and talks peer-to-peer to the agent inside the API process.

Inside the test's network namespace: ``parley serve`` (no LiveKit settings), an
OpenAI-compatible LLM stand-in, and the browser (Playwright, run as a process inside). The page
must show the greeting, the user's question and the agent's answer as captions, the agent's
state changes and the turn's latency; hanging up ends the call. A screenshot is kept in
``artifacts/``.
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
from tests.livekit.stack import ROOT, NsProcess
from tests.netns import Namespace

__all__ = ["db_url", "migrated_template", "pg_server"]
pytestmark = pytest.mark.e2e

API_PORT = 8002
API = f"http://10.213.0.1:{API_PORT}"
LLM_PORT = 8092


def test_tutor_page_peer_to_peer(
    netns: Namespace,
    ns_process: Callable[..., NsProcess],
    ns_client: Callable[..., Any],
    db_url: str,
    tmp_path: Path,
    speak: Callable[[str], Path],
) -> None:
    agent_id, key = asyncio.run(seed(db_url, agent_config(LLM_PORT)))
    ns_process(
        [".venv/bin/python", "-m", "tests.fakes.serve", "--port", str(LLM_PORT),
         "--rule", "check=" + ANSWER],
        name="llm",
        ready_log="ready",
    )  # fmt: skip
    env = {
        "DATABASE_URL": db_url,
        "PARLEY_DATA_DIR": str(tmp_path / "data"),
        "OPENAI_API_KEY": "test-key",
        "LIVEKIT_URL": "",  # embedded mode, whatever the environment says
    }
    api = ns_process(
        [".venv/bin/parley", "serve", "--host", "10.213.0.1", "--port", str(API_PORT)],
        name="api",
        env=env,
        ready_url=f"{API}/healthz",
        timeout=60,
    )
    status, page = netns.http("GET", f"{API}/tutor")
    assert status == 200, f"/tutor answered {status}: {page}"

    screenshot = ROOT / "artifacts" / "tutor-p2p.png"
    out = ns_client(
        "tests.livekit.clients.browser_tutor",
        ["--url", f"{API}/tutor?raw=1&debug=1&agent={agent_id}", "--wav", str(speak(QUESTION)),
         "--expect", "eighty", "--screenshot", str(screenshot), "--warmup"],
        env={"PARLEY_TEST_API_KEY": key},
        timeout=180,
    )  # fmt: skip
    print("browser:", json.dumps(out["timings"]), out["shown"]["latency_last"])
    assert out["shown"]["body"]["mode"] == "p2p", out["shown"]["body"]
    check_page(out, "check", "eighty")
    assert screenshot.is_file() and screenshot.stat().st_size > 10_000

    call = wait_ended(db_url, out["shown"]["body"]["callId"])
    assert call["status"] == "completed" and call["end_reason"] == "user_left", call
    assert "Traceback" not in api.log()
