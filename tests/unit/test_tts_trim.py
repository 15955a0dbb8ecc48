"""Piper's leading silence is trimmed from every utterance, cached or not, keeping a short pad."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from pipelines.services.local import tts
from pipelines.services.local.tts import PAD_SECS, trim_leading_silence

RATE = 22050


def _speech_after(silence_secs: float, *, noise: int = 0, secs: float = 0.2) -> np.ndarray:
    rng = np.random.default_rng(1)
    lead = rng.integers(-noise, noise + 1, int(RATE * silence_secs)).astype(np.int16)
    t = np.arange(int(RATE * secs)) / RATE
    tone = (8000 * np.sin(2 * np.pi * 220 * t)).astype(np.int16)
    return np.concatenate([lead, tone])


def _samples(pcm: bytes) -> np.ndarray:
    return np.frombuffer(pcm, dtype=np.int16)


def test_leading_silence_is_cut_to_a_short_faded_pad() -> None:
    pcm = _speech_after(0.06, noise=20)
    out = _samples(trim_leading_silence(pcm.tobytes(), RATE))
    cut = len(pcm) - len(out)
    # 60 ms of near-silence → about PAD_SECS left (the window rounds it by at most 2.5 ms).
    assert 0.06 - PAD_SECS - 0.003 <= cut / RATE <= 0.06 - PAD_SECS + 0.0001
    assert out[0] == 0  # faded in: no click at the cut
    np.testing.assert_array_equal(out[-RATE // 10 :], pcm[-RATE // 10 :])  # speech untouched


def test_audio_that_starts_with_speech_or_is_all_silence_is_kept() -> None:
    loud = _speech_after(0.0).tobytes()
    assert trim_leading_silence(loud, RATE) == loud
    quiet = np.zeros(RATE // 10, dtype=np.int16).tobytes()
    assert trim_leading_silence(quiet, RATE) == quiet
    assert trim_leading_silence(b"", RATE) == b""


def test_soft_onset_above_the_floor_is_kept() -> None:
    # A breathy onset at about -40 dBFS is speech, not silence.
    soft = (330 * np.sin(np.arange(int(RATE * 0.03)) / 3)).astype(np.int16)
    pcm = np.concatenate([np.zeros(int(RATE * 0.04), dtype=np.int16), soft, _speech_after(0)])
    out = _samples(trim_leading_silence(pcm.tobytes(), RATE))
    assert len(pcm) - len(out) <= int(RATE * (0.04 - PAD_SECS)) + 1
    assert len(out) >= len(soft) + int(RATE * 0.2)


class _FakePiper:
    """Two sentences, each opening with 50 ms of silence (as Piper's do)."""

    config = SimpleNamespace(sample_rate=RATE)

    def __init__(self) -> None:
        self.calls = 0

    def synthesize(self, _text: str) -> Any:
        self.calls += 1
        for _ in range(2):
            yield SimpleNamespace(audio_int16_bytes=_speech_after(0.05).tobytes())


@pytest.fixture
def fake_piper(monkeypatch: pytest.MonkeyPatch) -> _FakePiper:
    voice = _FakePiper()
    monkeypatch.setattr(tts, "piper_voice", lambda _path: voice)
    monkeypatch.setattr(tts, "_phrases", type(tts._phrases)())
    return voice


def test_only_the_utterance_start_is_trimmed_and_the_cache_keeps_it(
    fake_piper: _FakePiper,
) -> None:
    first, second = tts.synthesize("voice.onnx", "Hello. Hi.")
    full = len(_speech_after(0.05).tobytes())
    assert len(first) < full - 2 * int(RATE * 0.04)  # ~45 ms of 16-bit samples gone
    assert len(second) == full  # the pause between sentences stays
    assert tts.synthesize("voice.onnx", "Hello. Hi.") == [first, second]
    assert fake_piper.calls == 1


async def test_streamed_synthesis_is_trimmed_too(fake_piper: _FakePiper) -> None:
    service = tts.LocalPiperTTSService.__new__(tts.LocalPiperTTSService)
    service._voice = fake_piper
    streamed = [c async for c in service._synthesize(("voice.onnx", "Hello. Hi."))]
    assert streamed == tts.synthesize("voice.onnx", "Hello. Hi.")  # now from the cache
    assert len(streamed[0]) < len(streamed[1])
