"""Local STT: faster-whisper (CTranslate2, int8) with the bundled Whisper tiny.en."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from typing import Any

import numpy as np
from pipecat.frames.frames import Frame, InputAudioRawFrame, TranscriptionFrame
from pipecat.services.whisper.stt import WhisperSTTService
from pipecat.transcriptions.language import Language
from pipecat.utils.time import time_now_iso8601

from parley.audio import rms_dbfs
from pipelines.services.local.models import cached, cpu_threads, whisper_path


def whisper_model(path: str) -> Any:
    from faster_whisper import WhisperModel

    return cached(
        ("whisper", path),
        lambda: WhisperModel(path, device="cpu", compute_type="int8", cpu_threads=cpu_threads()),
    )


class _GreedyWhisper:
    """Pipecat calls ``transcribe`` with faster-whisper's defaults (beam search of 5); one short
    utterance per turn decodes ~2x faster greedily with the same words on clear speech."""

    def __init__(self, model: Any):
        self._model = model
        self.supported_languages = getattr(model, "supported_languages", None)

    def transcribe(self, audio: Any, **kwargs: Any) -> Any:
        kwargs.setdefault("beam_size", 1)
        kwargs.setdefault("without_timestamps", True)
        kwargs.setdefault("condition_on_previous_text", False)
        return self._model.transcribe(audio, **kwargs)


class LocalWhisperSTTService(WhisperSTTService):
    """Pipecat's Whisper service, but the model comes from the process cache (no per-call load)."""

    def __init__(self, *, model_path: str | None = None, language: str = "en", **kwargs: Any):
        self._model_path = model_path or str(whisper_path())
        super().__init__(
            device="cpu",
            compute_type="int8",
            settings=WhisperSTTService.Settings(
                model=self._model_path, language=Language(language.split("-")[0])
            ),
            # Whisper finishes the last word reliably with 0.2 s of padding; 0.5 s (Pipecat's
            # default) costs ~10 % more decoding on every turn.
            trailing_silence_secs=0.2,
            # Only a safety net when Whisper returns nothing (a finalized transcript ends the
            # wait at once); tiny.en needs < 1 s for a 10 s utterance on 2 cores.
            ttfs_p99_latency=1.5,
            **kwargs,
        )

    def _load(self) -> None:
        self._model = _GreedyWhisper(whisper_model(self._model_path))


SPEECH_DBFS = -40.0  # a 20 ms frame louder than this is speech (or noise worth waiting out)
SPECULATE_AFTER_MS = 120  # silence before a speculative transcription starts


@dataclass
class _Speculation:
    prefix: bytes  # the padded segment it transcribes
    task: asyncio.Future[Any]


class SpeculativeWhisperSTTService(LocalWhisperSTTService):
    """Starts transcribing during the VAD's end-of-speech wait instead of after it.

    The VAD only reports the end of speech after ``stop_secs`` of silence (0.4 s by default),
    and Whisper needs ~0.45 s more on 2 cores. Once a short silence follows speech, the segment
    is transcribed speculatively; if the VAD then confirms the stop with nothing but silence
    added, that result is used (the extra silence would not change Whisper's words). If the
    caller speaks again, the speculation is dropped.
    """

    def __init__(self, **kwargs: Any):
        super().__init__(**kwargs)
        self._quiet_ms = 0.0
        self._spec: _Speculation | None = None
        self.speculative_hits = 0  # turns answered from a speculative transcription

    async def process_audio_frame(self, frame: InputAudioRawFrame, direction: Any) -> None:
        await super().process_audio_frame(frame, direction)
        if not self._user_speaking:
            return
        if rms_dbfs(frame.audio) > SPEECH_DBFS:
            self._quiet_ms = 0.0
            self._drop()
            return
        self._quiet_ms += len(frame.audio) / 2 / frame.sample_rate * 1000
        if self._quiet_ms >= SPECULATE_AFTER_MS and self._spec is None:
            pcm = bytes(self._audio_buffer)
            padded = pcm + self._trailing_silence()
            task = asyncio.ensure_future(asyncio.to_thread(self._segments, padded))
            self._spec = _Speculation(pcm, task)

    def _drop(self) -> None:
        if self._spec is not None:
            self._spec.task.cancel()  # a thread already running finishes; its result is unused
            self._spec = None

    def _segments(self, pcm: bytes) -> list[Any]:
        audio = np.frombuffer(pcm, dtype=np.int16).astype(np.float32) / 32768.0
        settings: Any = self._settings  # Pipecat's settings class is not visible to mypy
        model: Any = self._model
        segments, _ = model.transcribe(audio, language=settings.language)
        return list(segments)

    async def run_stt(self, audio: bytes) -> AsyncGenerator[Frame, None]:
        await self.start_processing_metrics()
        spec, self._spec = self._spec, None
        segments: list[Any] | None = None
        if spec is not None and audio.startswith(spec.prefix):
            tail = audio[len(spec.prefix) :]
            if rms_dbfs(tail) <= SPEECH_DBFS:
                segments = await spec.task
                self.speculative_hits += 1
        if segments is None:
            if spec is not None:
                spec.task.cancel()
            segments = await asyncio.to_thread(self._segments, audio)
        settings: Any = self._settings
        threshold = settings.no_speech_prob
        text = " ".join(
            s.text.strip()
            for s in segments
            if not isinstance(threshold, float) or s.no_speech_prob < threshold
        ).strip()
        await self.stop_processing_metrics()
        if text:
            yield TranscriptionFrame(text, self._user_id, time_now_iso8601(), settings.language)
