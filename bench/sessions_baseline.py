"""The baseline for ``bench/sessions.py``: a plain LiveKit Agents ``AgentSession`` worker.

What a LiveKit Agents user would write for the same agent: ``AgentServer`` with explicit
dispatch by agent name, one ``AgentSession`` per job with Silero VAD (``livekit-plugins-silero``,
the same ONNX model and runtime Pipecat uses) and the OpenAI plugins pointed at the simulated
providers of ``bench/sessions_fakes.py`` (Whisper upload after end of speech, streamed chat
completion, streamed PCM speech). Turn-taking matches Parley's agent: the turn ends 0.4 s after
speech (VAD silence), no extra endpointing delay, no preemptive generation, VAD interruptions.

Run (inside the bench's network namespace, LIVEKIT_URL/KEY/SECRET set)::

    python bench/sessions_baseline.py start

Env: ``BENCH_FAKES_URL`` (``http://127.0.0.1:PORT``), ``BENCH_AGENT_NAME``, ``BENCH_THREADS``.
"""

from __future__ import annotations

import os
from typing import Any

from livekit.agents import (
    Agent,
    AgentServer,
    AgentSession,
    JobContext,
    JobExecutorType,
    JobProcess,
    cli,
)
from livekit.plugins import openai, silero

AGENT_NAME = os.environ.get("BENCH_AGENT_NAME", "baseline-agent")
FAKES_URL = os.environ.get("BENCH_FAKES_URL", "http://127.0.0.1:9300")
INSTRUCTIONS = "You are the receptionist of a dental clinic. Answer briefly."
VAD_STOP_SECS = 0.4  # Parley's default agent.turns.vad_stop_secs


def prewarm(proc: JobProcess) -> None:
    # Loaded once per job process before any job, as LiveKit's examples do.
    proc.userdata["vad"] = silero.VAD.load(min_silence_duration=VAD_STOP_SECS)


def _no_load(*_: Any) -> float:
    # The bench decides how many sessions run; never refuse a dispatch for CPU load.
    return 0.0


# BENCH_THREADS=1: jobs as threads of one process (livekit-agents' other executor).
server = AgentServer(
    setup_fnc=prewarm,
    load_fnc=_no_load,
    log_level="WARN",
    port=0,  # health endpoint on a free port: several workers share the namespace
    job_executor_type=JobExecutorType.THREAD
    if os.environ.get("BENCH_THREADS")
    else JobExecutorType.PROCESS,
)
server.on("worker_registered", lambda *_: print("BENCH WORKER READY", flush=True))


@server.rtc_session(agent_name=AGENT_NAME)
async def entrypoint(ctx: JobContext) -> None:
    base = f"{FAKES_URL}/v1"
    session: AgentSession[None] = AgentSession(
        vad=ctx.proc.userdata["vad"],
        stt=openai.STT(model="whisper-1", base_url=base, api_key="fake", use_realtime=False),
        llm=openai.LLM(model="fake-model", base_url=base, api_key="fake", temperature=0.6),
        tts=openai.TTS(
            model="tts-1", voice="alloy", base_url=base, api_key="fake", response_format="pcm"
        ),
        turn_handling={
            "turn_detection": "vad",
            "endpointing": {"min_delay": 0.0},
            "interruption": {"mode": "vad"},
            "preemptive_generation": {"enabled": False},
        },
    )
    await session.start(agent=Agent(instructions=INSTRUCTIONS), room=ctx.room)


if __name__ == "__main__":
    cli.run_app(server)
