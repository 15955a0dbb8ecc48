"""Local TTS: Piper (GPL-3.0, optional extra) with the bundled en_US-joe-medium voice.

Synthesized phrases are kept in a small per-process cache keyed by voice and text, so a greeting
synthesized at prewarm plays instantly on every call. Piper opens every utterance with 25–60 ms
of near-silence; it is trimmed (``trim_leading_silence``) so the first audio sent is speech.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import OrderedDict
from collections.abc import AsyncGenerator, AsyncIterator, Iterator
from typing import Any

import numpy as np
from loguru import logger
from pipecat.frames.frames import ErrorFrame, Frame
from pipecat.services.settings import TTSSettings
from pipecat.services.tts_service import TTSService

from pipelines.services.local.models import cached

PHRASE_CACHE_SIZE = 64
PHRASE_MAX_CHARS = 300
_phrases: OrderedDict[tuple[str, str], list[bytes]] = OrderedDict()

# Leading silence: 2.5 ms windows quieter than this RMS (about -54 dBFS, far below speech) are
# dropped up to PAD_SECS before the first louder one; the pad keeps soft onsets ("h", "f") and
# is faded in so the cut never clicks.
SILENCE_RMS = 64.0
WINDOW_SECS = 0.0025
PAD_SECS = 0.005


def trim_leading_silence(pcm: bytes, sample_rate: int) -> bytes:
    """16-bit mono ``pcm`` without its leading silence (all of it kept if it is all silence)."""
    samples = np.frombuffer(pcm[: len(pcm) & ~1], dtype=np.int16)
    win = max(1, int(sample_rate * WINDOW_SECS))
    n = len(samples) // win
    blocks = samples[: n * win].astype(np.float32).reshape(n, win)
    loud = np.flatnonzero(np.sqrt((blocks**2).mean(axis=1)) > SILENCE_RMS)
    if loud.size == 0:
        return pcm
    start = max(0, int(loud[0]) * win - int(sample_rate * PAD_SECS))
    if start == 0:
        return pcm
    out = samples[start:].astype(np.float32)
    fade = min(len(out), int(sample_rate * PAD_SECS))
    out[:fade] *= np.linspace(0.0, 1.0, fade, endpoint=False, dtype=np.float32)
    return bytes(out.astype(np.int16).tobytes())


def piper_voice(path: str) -> Any:
    import onnxruntime
    from piper import PiperVoice

    def load() -> Any:
        voice = PiperVoice.load(path)
        # Piper synthesizes while llama.cpp is still writing the reply: idle ONNX threads that
        # spin-wait steal the core the LLM needs (first audio 520 → 310 ms on 2 cores, measured
        # in docs/benchmarks.md).
        opts = onnxruntime.SessionOptions()
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        voice.session = onnxruntime.InferenceSession(
            path, sess_options=opts, providers=["CPUExecutionProvider"]
        )
        return voice

    return cached(("piper", path), load)


def synthesize(voice_path: str, text: str) -> list[bytes]:
    """Blocking: synthesize ``text`` to 16-bit PCM chunks (one per sentence); cache short ones."""
    key = (voice_path, text)
    if key in _phrases:
        _phrases.move_to_end(key)
        return _phrases[key]
    chunks = list(_pcm(piper_voice(voice_path), text))
    _remember(key, chunks)
    return chunks


def _pcm(voice: Any, text: str) -> Iterator[bytes]:
    """Piper's chunks (one per sentence) as 16-bit PCM; the utterance's leading silence trimmed
    (only the first chunk's: the pauses between sentences stay as Piper made them)."""
    for n, chunk in enumerate(voice.synthesize(text)):
        pcm: bytes = chunk.audio_int16_bytes
        yield trim_leading_silence(pcm, voice.config.sample_rate) if n == 0 else pcm


def _remember(key: tuple[str, str], chunks: list[bytes]) -> None:
    if len(key[1]) <= PHRASE_MAX_CHARS:
        _phrases[key] = chunks
        while len(_phrases) > PHRASE_CACHE_SIZE:
            _phrases.popitem(last=False)


class LocalPiperTTSService(TTSService):
    def __init__(self, *, voice_path: str, **kwargs: Any):
        super().__init__(
            push_start_frame=True,
            push_stop_frames=True,
            settings=TTSSettings(model=None, voice=voice_path, language=None),
            **kwargs,
        )
        self._voice_path = voice_path
        self._voice = piper_voice(voice_path)
        self._preparing: dict[tuple[str, str], asyncio.Future[list[bytes]]] = {}

    def can_generate_metrics(self) -> bool:
        return True

    async def prepare(self, text: str) -> None:
        """Synthesize ``text`` ahead (e.g. the greeting while the room waits for the caller),
        so speaking it later replays the cache."""
        key = (self._voice_path, text)
        if key not in self._preparing:
            job = asyncio.ensure_future(asyncio.to_thread(synthesize, self._voice_path, text))
            self._preparing[key] = job
            job.add_done_callback(lambda _job: self._preparing.pop(key, None))
        await asyncio.shield(self._preparing[key])

    async def run_tts(self, text: str, context_id: str) -> AsyncGenerator[Frame, None]:
        key = (self._voice_path, text)
        try:
            await self.start_tts_usage_metrics(text)
            if key in self._preparing:
                # Still being prepared (a busy machine, a caller who joined at once): wait for
                # it rather than synthesize it a second time on the same cores (if it failed,
                # synthesis below tries again).
                with contextlib.suppress(Exception):
                    await asyncio.shield(self._preparing[key])
            chunks = _phrases.get(key)
            source = _replay(chunks) if chunks is not None else self._synthesize(key)
            async for frame in self._stream_audio_frames_from_iterator(
                source, in_sample_rate=self._voice.config.sample_rate, context_id=context_id
            ):
                await self.stop_ttfb_metrics()
                yield frame
        except Exception as e:  # a TTS failure must not take the call down
            logger.error(f"{self} synthesis failed: {e}")
            yield ErrorFrame(error=f"TTS failed: {e}")
        finally:
            await self.stop_ttfb_metrics()

    async def _synthesize(self, key: tuple[str, str]) -> AsyncIterator[bytes]:
        # Piper yields one chunk per sentence; each is made in a worker thread so the event loop
        # (and every other call's 20 ms audio) keeps running.
        it = _pcm(self._voice, key[1])
        done: list[bytes] = []
        while True:
            chunk = await asyncio.to_thread(next, it, None)
            if chunk is None:
                break
            done.append(chunk)
            yield chunk
        _remember(key, done)


async def _replay(chunks: list[bytes]) -> AsyncIterator[bytes]:
    for c in chunks:
        yield c
