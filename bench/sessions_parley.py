"""Starts the real Parley worker (``parley worker``) for ``bench/sessions.py``.

The agent config (``bench/sessions_sides.py``) points every provider at the simulated ones
(``bench/sessions_fakes.py``) through shipped providers: STT ``groq`` (Whisper protocol), LLM
and TTS ``openai`` with a ``base_url``. The one bench-only addition, applied at import time so
that every job process (livekit-agents forks them from a forkserver that re-imports this file
as ``__mp_main__``) gets it too: the worker prints ``BENCH WORKER READY`` when it registered
with the LiveKit server.

Everything else is the shipped code path: ``parley.cli worker`` → ``agents.livekit.worker``
→ ``agents.runner.run_call`` → ``pipelines``. Options after the script name go to
``parley worker`` (e.g. ``--max-jobs 64 --idle-processes 2 --threads``).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from agents.livekit import worker as parley_worker  # noqa: E402
from parley.settings import Settings  # noqa: E402

_original_build = parley_worker.build_server


def _build_server(settings: Settings, **options: Any) -> Any:
    server = _original_build(settings, **options)
    server.on("worker_registered", lambda *_: print("BENCH WORKER READY", flush=True))
    return server


parley_worker.build_server = _build_server  # type: ignore[assignment]


if __name__ == "__main__":
    from parley.cli import app

    app(["worker", *sys.argv[1:]])
