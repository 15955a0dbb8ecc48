"""Shared fixtures: isolated settings, spoken WAVs made with the bundled Piper voice, Whisper."""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from parley.config import AgentConfig
from parley.settings import Settings

# The fakes of remote services (FakeCloud, tool servers) listen on 127.0.0.1: this test
# operator allows that address to agents' tools and provider URLs, as an operator allows an
# intranet range (PARLEY_EGRESS_ALLOW_CIDRS). Set for the process, so servers and workers the
# tests start inherit it; tests/security/test_egress.py takes it away again.
os.environ["PARLEY_EGRESS_ALLOW_CIDRS"] = "127.0.0.1/32"

CLOUD_ENV = (
    "GROQ_API_KEY",
    "GROQ_BASE_URL",
    "DEEPGRAM_API_KEY",
    "DEEPGRAM_BASE_URL",
    "OPENAI_API_KEY",
    "OPENAI_BASE_URL",
)


@pytest.fixture(autouse=True)
def _no_cloud_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Tests never pick up the developer's real keys, and never share a data dir."""
    for name in CLOUD_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PARLEY_DATA_DIR", str(tmp_path / "parley-data"))


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path / "parley-data")


def make_agent(**overrides: object) -> AgentConfig:
    base: dict[str, object] = {
        "name": "Test agent",
        "system_prompt": "You are a test agent. Answer briefly.",
        "greeting": None,
        "turns": {"vad_stop_secs": 0.3},
    }
    base.update(overrides)
    return AgentConfig.model_validate(base)


@pytest.fixture(scope="session")
def speak(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    """``speak(text)`` -> a WAV of the bundled Piper voice saying it (cached per text)."""
    if importlib.util.find_spec("piper") is None:
        pytest.skip("the piper extra is not installed (pip install 'parley[piper]')")
    from agents.file.demo import speak_to_wav

    folder = tmp_path_factory.mktemp("speech")
    made: dict[str, Path] = {}

    def _speak(text: str) -> Path:
        if text not in made:
            made[text] = speak_to_wav(text, folder / f"u{len(made)}.wav", Settings(data_dir=folder))
        return made[text]

    return _speak


@pytest.fixture(scope="session")
def transcribe() -> Iterator[Callable[[Path], str]]:
    """Transcribe a WAV with the bundled Whisper tiny.en (lower-cased, no punctuation)."""
    from parley.audio import read_wav
    from pipelines.services.local.models import whisper_path
    from pipelines.services.local.stt import whisper_model

    model = whisper_model(str(whisper_path()))

    def _run(path: Path) -> str:
        import numpy as np

        pcm = read_wav(path, 16000)
        audio = np.frombuffer(pcm.data, dtype="<i2").astype(np.float32) / 32768.0
        segments, _ = model.transcribe(audio, language="en", beam_size=1)
        text = " ".join(s.text for s in segments).lower()
        return "".join(c for c in text if c.isalnum() or c.isspace())

    yield _run


@pytest.fixture(scope="session")
def transcribe_wav_bytes(transcribe: Callable[[Path], str]) -> Callable[[bytes], str]:
    """The same Whisper, for the fake clouds (they hand over WAV bytes)."""
    import tempfile

    def _run(wav: bytes) -> str:
        with tempfile.NamedTemporaryFile(suffix=".wav") as f:
            f.write(wav)
            f.flush()
            return transcribe(Path(f.name))

    return _run
