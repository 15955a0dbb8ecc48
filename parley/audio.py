"""Audio file helpers: read any WAV into 16-bit mono PCM at a target rate, write WAVs."""

from __future__ import annotations

import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from parley.errors import AudioInputError

MAX_INPUT_SECONDS = 600


@dataclass(frozen=True, slots=True)
class Pcm:
    """16-bit little-endian mono PCM."""

    data: bytes
    sample_rate: int

    @property
    def seconds(self) -> float:
        return len(self.data) / 2 / self.sample_rate


def read_wav(path: str | Path, sample_rate: int) -> Pcm:
    """Read a WAV/FLAC/OGG file of any rate, width or channel count as mono PCM at ``sample_rate``.

    Raises AudioInputError with a fix when the file is missing, not audio, empty or too long.
    """
    p = Path(path)
    if not p.is_file():
        raise AudioInputError(f"{p}: no such file (fix: pass the path of a .wav file)")
    try:
        samples, rate = sf.read(str(p), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError) as err:
        raise AudioInputError(
            f"{p}: not a readable audio file ({err}); fix: convert it, e.g. "
            "`sox in.mp3 -r 16000 -c 1 -b 16 out.wav`"
        ) from None
    if samples.shape[0] == 0:
        raise AudioInputError(f"{p}: the file holds no audio samples")
    if samples.shape[0] / rate > MAX_INPUT_SECONDS:
        raise AudioInputError(f"{p}: longer than {MAX_INPUT_SECONDS} s; split it into turns")
    mono = samples.mean(axis=1)
    if rate != sample_rate:
        mono = soxr.resample(mono, rate, sample_rate, quality="HQ")
    pcm = (np.clip(mono, -1.0, 1.0) * 32767.0).astype("<i2").tobytes()
    return Pcm(pcm, sample_rate)


def write_wav(path: str | Path, pcm: bytes, sample_rate: int, channels: int = 1) -> None:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(sample_rate)
        w.writeframes(pcm)


def rms_dbfs(pcm: bytes) -> float:
    """Loudness of 16-bit PCM in dBFS (-inf for silence); used by tests and the harness."""
    a = np.frombuffer(pcm, dtype="<i2").astype(np.float64)
    if a.size == 0:
        return float("-inf")
    rms = float(np.sqrt(np.mean(a * a)))
    return 20.0 * float(np.log10(rms / 32768.0)) if rms > 0 else float("-inf")
