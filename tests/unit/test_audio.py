"""WAV input: any rate/channel count is resampled to 16 kHz mono; unusable files fail clearly."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from parley.audio import read_wav, rms_dbfs, write_wav
from parley.errors import AudioInputError


def _tone(rate: int, seconds: float, channels: int) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    mono = 0.5 * np.sin(2 * np.pi * 440 * t)
    return np.stack([mono] * channels, axis=1) if channels > 1 else mono


@pytest.mark.parametrize(
    ("rate", "channels", "subtype"),
    [(8000, 1, "PCM_16"), (44100, 2, "PCM_24"), (48000, 1, "FLOAT"), (16000, 1, "PCM_16")],
)
def test_any_wav_becomes_16k_mono(tmp_path: Path, rate: int, channels: int, subtype: str) -> None:
    path = tmp_path / "in.wav"
    sf.write(path, _tone(rate, 1.5, channels), rate, subtype=subtype)
    pcm = read_wav(path, 16000)
    assert pcm.sample_rate == 16000
    assert abs(pcm.seconds - 1.5) < 0.01
    # A 0.5-amplitude sine is -9 dBFS: resampling and down-mixing kept the level.
    assert -10.0 < rms_dbfs(pcm.data) < -8.0
    samples = np.frombuffer(pcm.data, dtype="<i2").astype(float)
    spectrum = np.abs(np.fft.rfft(samples))
    assert abs(np.argmax(spectrum) * 16000 / len(samples) - 440) < 5


def test_unusable_inputs_fail_with_a_fix(tmp_path: Path) -> None:
    with pytest.raises(AudioInputError, match="no such file"):
        read_wav(tmp_path / "missing.wav", 16000)
    junk = tmp_path / "junk.wav"
    junk.write_bytes(b"RIFF not really audio" * 10)
    with pytest.raises(AudioInputError, match="fix: convert it"):
        read_wav(junk, 16000)
    empty = tmp_path / "empty.wav"
    write_wav(empty, b"", 16000)
    with pytest.raises(AudioInputError, match="no audio samples"):
        read_wav(empty, 16000)


def test_silence_is_minus_infinity() -> None:
    assert rms_dbfs(bytes(3200)) == float("-inf")
