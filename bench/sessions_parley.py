"""Starts the real Parley worker (``parley worker``) for ``bench/sessions.py``.

Two bench-only additions, applied at import time so that every job process (livekit-agents
forks them from a forkserver that re-imports this file as ``__mp_main__``) gets them too:

* the ``local`` TTS provider entry is replaced by Pipecat's ``OpenAITTSService`` pointed at the
  simulated providers (``BENCH_FAKES_URL``), pushing audio as it arrives: Parley has no
  OpenAI-compatible TTS provider, and the agent config only accepts ``tts.provider: local``.
  STT (Groq Whisper protocol) and LLM (OpenAI-compatible ``base_url``) need nothing: the
  agent config points them at the fakes;
* the worker prints ``BENCH WORKER READY`` when it registered with the LiveKit server.

Everything else is the shipped code path: ``parley.cli worker`` → ``agents.livekit.worker``
→ ``agents.runner.run_call`` → ``pipelines``. Options after the script name go to
``parley worker`` (e.g. ``--max-jobs 64 --idle-processes 2 --threads``).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from agents.livekit import worker as parley_worker  # noqa: E402
from parley.config import AgentConfig  # noqa: E402
from parley.settings import Settings  # noqa: E402
from pipelines import registry  # noqa: E402
from pipelines.services.base import ProviderEntry, Service  # noqa: E402

FAKES_URL = os.environ.get("BENCH_FAKES_URL", "http://127.0.0.1:9300")


def _simulated_tts(agent: AgentConfig, settings: Settings) -> Service:
    from pipecat.services.openai.tts import OpenAITTSService

    class StreamingOpenAITTS(OpenAITTSService):  # type: ignore[misc]
        @property
        def chunk_size(self) -> int:
            # Pipecat downloads 0.5 s of audio before the first frame by default; the baseline's
            # plugin plays bytes as they arrive, and so does this one (40 ms frames).
            return int(self.sample_rate * 0.040) * 2

    return StreamingOpenAITTS(
        api_key="fake",
        base_url=f"{FAKES_URL}/v1",
        sample_rate=24000,
        settings=OpenAITTSService.Settings(model="tts-1", voice="alloy"),
    )


_SIMULATED_TTS = ProviderEntry(
    kind="tts", name="local", modules=("openai",), install="-", build=_simulated_tts
)
_original_entries = registry._entries


def _entries() -> dict[Any, ProviderEntry]:
    table = _original_entries()
    table[("tts", "local")] = _SIMULATED_TTS
    return table


registry._entries = _entries  # type: ignore[assignment]

_original_build = parley_worker.build_server


def _build_server(settings: Settings, **options: Any) -> Any:
    server = _original_build(settings, **options)
    server.on("worker_registered", lambda *_: print("BENCH WORKER READY", flush=True))
    return server


parley_worker.build_server = _build_server  # type: ignore[assignment]


if __name__ == "__main__":
    from parley.cli import app

    app(["worker", *sys.argv[1:]])
