"""Audio helpers shared by the fake STT endpoints: WAV (de)coding, tones, energy VAD."""

from __future__ import annotations

import io
import math
import wave
from collections.abc import Callable

import numpy as np

Transcriber = Callable[[bytes], str]
"""Turns a complete WAV file (bytes, 16-bit PCM) into a transcript.

Both fake STT endpoints call it: Groq/OpenAI Whisper with the uploaded file as
received, Deepgram with the buffered utterance wrapped in a mono WAV header
carrying the stream's sample rate. It runs in a worker thread, so it may block
(e.g. a real local Whisper model).
"""


def fixed_transcriber(text: str) -> Transcriber:
    """A transcriber that always answers ``text``."""

    def transcribe(_wav: bytes) -> str:
        return text

    return transcribe


def pcm_to_wav(pcm: bytes, sample_rate: int, channels: int = 1) -> bytes:
    """Wrap 16-bit little-endian PCM in a WAV container."""
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(sample_rate)
        w.writeframes(pcm)
    return buf.getvalue()


def wav_to_pcm(wav: bytes) -> tuple[bytes, int, int]:
    """``(pcm, sample_rate, channels)`` of a 16-bit PCM WAV file; raises ``wave.Error``."""
    with wave.open(io.BytesIO(wav), "rb") as w:
        if w.getsampwidth() != 2:
            raise wave.Error("only 16-bit PCM WAV is supported")
        return w.readframes(w.getnframes()), w.getframerate(), w.getnchannels()


def wav_duration_s(wav: bytes) -> float:
    with wave.open(io.BytesIO(wav), "rb") as w:
        return w.getnframes() / float(w.getframerate())


def tone(
    duration_s: float, sample_rate: int = 16000, freq_hz: float = 220.0, amplitude: int = 8000
) -> bytes:
    """A mono 16-bit sine tone: loud enough to count as speech for the energy VAD."""
    n = int(duration_s * sample_rate)
    t = np.arange(n, dtype=np.float64) / sample_rate
    samples = (amplitude * np.sin(2 * math.pi * freq_hz * t)).astype("<i2")
    return samples.tobytes()


def silence(duration_s: float, sample_rate: int = 16000) -> bytes:
    """Mono 16-bit digital silence."""
    return b"\x00\x00" * int(duration_s * sample_rate)


def first_channel(pcm: bytes, channels: int) -> bytes:
    """Channel 0 of interleaved 16-bit PCM (the input itself when mono)."""
    if channels <= 1:
        return pcm
    usable = len(pcm) - len(pcm) % (2 * channels)
    samples = np.frombuffer(pcm[:usable], dtype="<i2").reshape(-1, channels)
    return np.ascontiguousarray(samples[:, 0]).tobytes()


def rms(pcm: bytes) -> float:
    """Root-mean-square level of mono 16-bit PCM (0..32768)."""
    if len(pcm) < 2:
        return 0.0
    samples = np.frombuffer(pcm[: len(pcm) - len(pcm) % 2], dtype="<i2").astype(np.float64)
    return float(np.sqrt(np.mean(samples * samples)))
