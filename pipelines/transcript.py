"""Turn records and per-turn latency, measured from frames as they flow.

Latency offsets are milliseconds from the moment the user stopped speaking (the VAD stop event
minus its ``stop_secs`` of confirming silence): when the final transcript arrived, when the LLM
produced its first token, when TTS produced its first audio, and when the transport started
playing the reply (``voice_to_voice_ms``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from loguru import logger
from pipecat.frames.frames import (
    BotStartedSpeakingFrame,
    LLMTextFrame,
    TranscriptionFrame,
    TTSAudioRawFrame,
    VADUserStartedSpeakingFrame,
    VADUserStoppedSpeakingFrame,
)
from pipecat.observers.base_observer import BaseObserver, FramePushed


@dataclass(slots=True)
class Latency:
    stt_final_ms: float | None = None
    llm_first_token_ms: float | None = None
    tts_first_audio_ms: float | None = None
    voice_to_voice_ms: float | None = None


@dataclass(slots=True)
class Turn:
    index: int
    role: Literal["user", "assistant"]
    text: str
    started_at: str
    ended_at: str
    interrupted: bool = False
    latency: Latency | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


TurnSink = Callable[[Turn], Awaitable[None]]


class LatencyObserver(BaseObserver):
    """Timestamps the stages of each reply. Only looks at first pushes: O(1) per frame."""

    def __init__(self) -> None:
        super().__init__()
        self._stop_ns: int | None = None
        self._stt_ns: int | None = None
        self._llm_ns: int | None = None
        self._tts_ns: int | None = None
        self.measurements: list[Latency] = []
        # Wall-clock time (epoch s) of the call's first audio out, usually the greeting's.
        self.first_audio_at: float | None = None
        self.on_first_audio: Callable[[float], None] | None = None

    async def on_push_frame(self, data: FramePushed) -> None:
        if not data.first_push:
            return
        f, ts = data.frame, data.timestamp
        if self.first_audio_at is None and isinstance(f, BotStartedSpeakingFrame):
            self.first_audio_at = time.time()
            if self.on_first_audio is not None:
                self.on_first_audio(self.first_audio_at)
        if isinstance(f, VADUserStartedSpeakingFrame):
            self._stop_ns = None
        elif isinstance(f, VADUserStoppedSpeakingFrame):
            self._stop_ns = ts - int(f.stop_secs * 1e9)
            self._stt_ns = self._llm_ns = self._tts_ns = None
        elif self._stop_ns is None:
            return
        elif isinstance(f, TranscriptionFrame):
            self._stt_ns = ts
        elif isinstance(f, LLMTextFrame) and self._llm_ns is None:
            self._llm_ns = ts
        elif isinstance(f, TTSAudioRawFrame) and self._tts_ns is None:
            self._tts_ns = ts
        elif isinstance(f, BotStartedSpeakingFrame):
            base = self._stop_ns

            def ms(t: int | None) -> float | None:
                return None if t is None else round(max(0, t - base) / 1e6, 1)

            self.measurements.append(
                Latency(ms(self._stt_ns), ms(self._llm_ns), ms(self._tts_ns), ms(ts))
            )
            self._stop_ns = None

    def take(self) -> Latency | None:
        return self.measurements[-1] if self.measurements else None


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


class TranscriptRecorder:
    """Builds turns from the context aggregators' events and hands each to a sink as it ends.

    Sinks (a file, the database) run in a background task fed by a queue, so a slow write never
    delays the pipeline; ``close()`` drains what is queued.
    """

    def __init__(self, latency: LatencyObserver, sink: TurnSink | None = None) -> None:
        self.turns: list[Turn] = []
        self._latency = latency
        self._used = 0
        self._sink = sink
        self._queue: asyncio.Queue[Turn | None] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._knowledge: list[str] = []  # chunk ids retrieved for the answer being prepared

    def start(self) -> None:
        if self._sink is not None and self._task is None:
            self._task = asyncio.create_task(self._drain(), name="transcript-sink")

    async def close(self) -> None:
        if self._task is not None:
            await self._queue.put(None)
            await self._task
            self._task = None

    async def _drain(self) -> None:
        assert self._sink is not None
        while (turn := await self._queue.get()) is not None:
            try:
                await self._sink(turn)
            except Exception as err:  # keep recording the rest of the call
                logger.error(f"transcript sink failed on turn {turn.index}: {err}")

    def _add(self, turn: Turn) -> None:
        self.turns.append(turn)
        if self._sink is not None:
            self._queue.put_nowait(turn)

    def knowledge_used(self, chunk_ids: Iterable[object], *, append: bool = False) -> None:
        """Knowledge chunks retrieved to answer the current user turn; they are recorded on
        the next assistant turn. Per-turn retrieval replaces them; lookups (a tool) append."""
        ids = [str(i) for i in chunk_ids]
        if append:
            ids = [*self._knowledge, *(i for i in ids if i not in self._knowledge)]
        self._knowledge = ids

    def user(self, text: str, started: str | None) -> None:
        if text.strip():
            self._add(Turn(len(self.turns), "user", text.strip(), started or now_iso(), now_iso()))

    def assistant(self, text: str, started: str | None, interrupted: bool) -> None:
        # An interrupted reply is kept even when none of it was heard: the caller barged in.
        if not text.strip() and not interrupted:
            return
        latency = None
        if len(self._latency.measurements) > self._used:
            latency = self._latency.measurements[-1]
            self._used = len(self._latency.measurements)
        extra: dict[str, Any] = {}
        if self._knowledge:
            extra["knowledge_chunk_ids"], self._knowledge = self._knowledge, []
        self._add(
            Turn(
                len(self.turns),
                "assistant",
                text.strip(),
                started or now_iso(),
                now_iso(),
                interrupted=interrupted,
                latency=latency,
                extra=extra,
            )
        )
