"""Events for a browser UI, sent over Pipecat's RTVI protocol (the tutor page reads them).

Pipecat's RTVI observer already reports speaking state, captions and raw metrics. What it
cannot know is Parley's per-turn latency breakdown, so after each assistant turn this module
sends an RTVI ``server-message`` with::

    {"type": "latency", "turn": 3, "voice_to_voice_ms": 1040, "stt_ms": 310, "llm_ms": 280,
     "tts_ms": 250}

``stt_ms`` is from the end of the user's speech to the final transcript, ``llm_ms`` from there
to the LLM's first token, ``tts_ms`` from there to the first synthesized audio, and
``voice_to_voice_ms`` from the end of speech until the reply started playing (see
:mod:`pipelines.transcript`). Stages that were not measured are ``null``.

The message is sent from the transcript recorder's sink task, never from the audio path.
"""

from __future__ import annotations

from typing import Any

from loguru import logger
from pipecat.pipeline.worker import PipelineWorker
from pipecat.processors.frameworks.rtvi.frames import RTVIServerMessageFrame

from pipelines.transcript import Latency, Turn, TurnSink


def _stage(end: float | None, start: float | None) -> int | None:
    if end is None:
        return None
    return max(0, round(end - (start or 0.0)))


def latency_message(turn: Turn) -> dict[str, Any] | None:
    """The ``latency`` server-message data for an assistant turn, or None if not measured
    (a greeting, a reply to nothing the user said)."""
    lat: Latency | None = turn.latency
    if turn.role != "assistant" or lat is None:
        return None
    return {
        "type": "latency",
        "turn": turn.index,
        "voice_to_voice_ms": _stage(lat.voice_to_voice_ms, None),
        "stt_ms": _stage(lat.stt_final_ms, None),
        "llm_ms": _stage(lat.llm_first_token_ms, lat.stt_final_ms),
        "tts_ms": _stage(lat.tts_first_audio_ms, lat.llm_first_token_ms),
    }


class UiEvents:
    """Sends Parley's own UI events to an RTVI client through a worker that has RTVI on.

    ``sink()`` wraps the transcript sink (the call's turn writer, if any), so the latency
    of each assistant turn goes out as the turn is recorded; ``attach()`` names the worker
    once it is built (the recorder is created before it).
    """

    def __init__(self) -> None:
        self._worker: PipelineWorker | None = None

    def attach(self, worker: PipelineWorker) -> None:
        self._worker = worker

    async def send(self, data: dict[str, Any]) -> None:
        """Queue an RTVI ``server-message``; the RTVI observer serializes it for the client."""
        if self._worker is not None:
            await self._worker.queue_frame(RTVIServerMessageFrame(data=data))

    def sink(self, inner: TurnSink | None) -> TurnSink:
        async def _sink(turn: Turn) -> None:
            data = latency_message(turn)
            if data is not None:
                try:
                    await self.send(data)
                except Exception as err:  # a UI hiccup must not lose the turn record
                    logger.warning(f"could not send the latency of turn {turn.index}: {err}")
            if inner is not None:
                await inner(turn)

        return _sink
