"""``parley talk``: run the real voice pipeline on WAV files and write what happened to a folder.

Writes ``agent-turn-N.wav`` (every stretch of agent speech, in order, greeting included) and
``transcript.json`` (rewritten after every turn, so a crash loses nothing already said).
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from loguru import logger

from agents.file.transport import CallerScript, FileTransport
from parley.audio import Pcm, read_wav, write_wav
from parley.config import AgentConfig
from parley.settings import Settings
from pipelines.graph import AUDIO_IN_RATE, build_session
from pipelines.knowledge.retrieve import Retriever
from pipelines.registry import Services, build_services, prewarm
from pipelines.transcript import Turn

AUDIO_OUT_RATE = 24000


@dataclass
class TalkResult:
    out_dir: Path
    turns: list[Turn]
    audio_files: list[Path]
    providers: dict[str, str]
    end_reason: str
    # Per utterance: from the caller's last voiced audio to the agent's next audio, measured at
    # the transport (wall clock, no VAD involved).
    measured_voice_to_voice_ms: list[float]

    def voice_to_voice_ms(self) -> list[float]:
        return [
            t.latency.voice_to_voice_ms
            for t in self.turns
            if t.latency is not None and t.latency.voice_to_voice_ms is not None
        ]


def _write_json(path: Path, doc: dict[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(doc, indent=2), encoding="utf-8")
    os.replace(tmp, path)  # atomic: a reader never sees half a file


def measured_latencies(speech_ends: list[float], agent_starts: list[float]) -> list[float]:
    out = []
    for end in speech_ends:
        after = [s for s in agent_starts if s > end]
        if after:
            out.append(round((after[0] - end) * 1000, 1))
    return out


def _summary(turns: list[Turn]) -> dict[str, Any]:
    v2v = [
        t.latency.voice_to_voice_ms
        for t in turns
        if t.latency is not None and t.latency.voice_to_voice_ms is not None
    ]
    if not v2v:
        return {}
    return {"voice_to_voice_ms": {"median": statistics.median(v2v), "max": max(v2v), "n": len(v2v)}}


def _prepare(wavs: list[Path] | list[Pcm], out_dir: Path) -> list[Pcm]:
    utterances = [w if isinstance(w, Pcm) else read_wav(w, AUDIO_IN_RATE) for w in wavs]
    out_dir.mkdir(parents=True, exist_ok=True)
    return utterances


def _write_turns(turns: list[bytes], out_dir: Path) -> list[Path]:
    files = []
    for n, pcm in enumerate(turns, start=1):
        path = out_dir / f"agent-turn-{n}.wav"
        write_wav(path, pcm, AUDIO_OUT_RATE)
        files.append(path)
    return files


async def talk(
    agent: AgentConfig,
    wavs: list[Path] | list[Pcm],
    out_dir: Path,
    settings: Settings,
    *,
    services: Services | None = None,
    reply_timeout_secs: float = 30.0,
    barge_in_after_secs: float | None = None,
    retriever: Retriever | None = None,
) -> TalkResult:
    """Play ``wavs`` to the agent in real time; return and write the transcript and recordings.

    ``retriever`` answers ``agent.knowledge`` (without one, the knowledge bases are ignored)."""
    utterances = await asyncio.to_thread(_prepare, wavs, out_dir)
    if services is None:
        await asyncio.to_thread(prewarm, agent, settings)
        services = build_services(agent, settings)
    transcript = out_dir / "transcript.json"
    call_id = uuid.uuid4().hex[:12]
    header = {"call_id": call_id, "agent": agent.name, "providers": services.providers}
    turns: list[Turn] = []

    async def sink(turn: Turn) -> None:
        turns.append(turn)
        doc = {**header, "status": "in_progress", "turns": [t.to_dict() for t in turns]}
        await asyncio.to_thread(_write_json, transcript, doc)

    script = CallerScript(
        utterances,
        wait_for_greeting=bool(agent.greeting),
        reply_timeout_secs=reply_timeout_secs,
        barge_in_after_secs=barge_in_after_secs,
    )
    transport = FileTransport(script)
    session = build_session(
        agent,
        transport,
        services,
        sink=sink,
        audio_out_rate=AUDIO_OUT_RATE,
        retriever=retriever,
        settings=settings,
    )
    # Every log line of this call, Pipecat's included (tasks inherit the context), carries call_id.
    with logger.contextualize(call_id=call_id):
        logger.info(f"talking to {agent.name!r} with {services.providers}")
        await session.run()

    files = await asyncio.to_thread(_write_turns, transport.output().turns, out_dir)
    measured = measured_latencies(script.speech_end_times, transport.output().turn_start_times)
    doc = {
        **header,
        "status": "completed",
        "end_reason": session.end_reason,
        "audio_files": [f.name for f in files],
        "turns": [t.to_dict() for t in session.recorder.turns],
        "summary": _summary(session.recorder.turns) | {"measured_voice_to_voice_ms": measured},
    }
    await asyncio.to_thread(_write_json, transcript, doc)
    return TalkResult(
        out_dir,
        session.recorder.turns,
        files,
        services.providers,
        session.end_reason,
        measured,
    )
