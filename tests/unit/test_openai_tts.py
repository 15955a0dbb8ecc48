"""``tts.provider: openai``: any ``/v1/audio/speech`` server, driven through the real OpenAI SDK
and Pipecat service against the local fake (``tests.fakes.speech_api``)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pipecat.frames.frames import ErrorFrame, TTSAudioRawFrame, TTSSpeakFrame
from pipecat.observers.base_observer import BaseObserver, FramePushed
from pipecat.tests.utils import SleepFrame, run_test

from parley.config import parse_agent
from parley.errors import ConfigError, ProviderUnavailable
from parley.settings import Settings
from pipelines.registry import build_services, resolve
from pipelines.services.openai.tts import OpenAICompatTTSService
from tests.conftest import make_agent
from tests.fakes import FakeCloud, SpeechOptions, tone

KEY = "sk-test-key"
TEXT = "Hello, this is Bright Smile Dental."
AUDIO = tone(0.6, 24000, 330.0)  # 0.6 s at 24 kHz: many 40 ms frames


@pytest.fixture(autouse=True)
def _no_openai_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def cloud() -> Iterator[FakeCloud]:
    with FakeCloud(api_key=KEY, speech=SpeechOptions(synthesize=lambda _t: AUDIO)) as c:
        yield c


def _settings(tmp_path: Path, **env: str) -> Settings:
    return Settings(data_dir=tmp_path, **env)  # type: ignore[arg-type]


def _agent(cloud: FakeCloud, key: str = KEY, **tts: Any) -> Any:
    # STT and LLM are cheap cloud clients too, so building the services loads no local model.
    # The agent's own servers get the agent's own key (an organization secret), not the server's.
    ref = "${secrets.SPEECH_KEY}"
    return parse_agent(
        {
            "name": "Speaker",
            "system_prompt": "Be brief.",
            "stt": {"provider": "groq"},
            "llm": {"provider": "openai", "base_url": cloud.openai_base_url, "model": "m"},
            "tts": {"provider": "openai", "base_url": cloud.openai_base_url, "api_key": ref, **tts},
        }
    ).with_secrets({"SPEECH_KEY": key})


def test_agent_config_accepts_openai_tts() -> None:
    agent = make_agent(
        tts={"provider": "openai", "base_url": "http://127.0.0.1:8880/v1", "model": "kokoro"}
    )
    assert agent.tts.provider == "openai"
    assert str(agent.tts.base_url) == "http://127.0.0.1:8880/v1"
    assert agent.tts.model == "kokoro" and agent.tts.voice is None


def test_unknown_tts_provider_is_a_config_error() -> None:
    doc = {"name": "A", "system_prompt": "x", "tts": {"provider": "elevenlabs"}}
    with pytest.raises(ConfigError, match=r"tts\.provider: .*allowed values"):
        parse_agent(doc)


def test_build_services_picks_openai_tts(cloud: FakeCloud, tmp_path: Path) -> None:
    settings = _settings(tmp_path, GROQ_API_KEY="gsk_x")
    services = build_services(_agent(cloud, model="tts-1", voice="alloy"), settings)
    assert services.providers == {"stt": "groq", "llm": "openai", "tts": "openai"}
    assert isinstance(services.tts, OpenAICompatTTSService)


def test_auto_keeps_local_tts_with_an_openai_key(tmp_path: Path) -> None:
    names = resolve(make_agent(), _settings(tmp_path, OPENAI_API_KEY=KEY)).names()
    assert names["tts"] == "local"


def test_openai_tts_without_url_or_key_says_how_to_fix(tmp_path: Path) -> None:
    agent = make_agent(tts={"provider": "openai"})
    with pytest.raises(ProviderUnavailable, match=r"tts provider 'openai' is not configured"):
        resolve(agent, _settings(tmp_path))
    with pytest.raises(ProviderUnavailable, match=r"tts\.base_url .*OPENAI_API_KEY"):
        build_services(agent, _settings(tmp_path))


def test_custom_server_needs_a_model_name(cloud: FakeCloud, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"tts\.model is required"):
        build_services(_agent(cloud), _settings(tmp_path, GROQ_API_KEY="gsk_x"))


class FirstAudio(BaseObserver):
    """When the first audio frame left the TTS service (monotonic clock)."""

    at: float | None = None

    async def on_push_frame(self, data: FramePushed) -> None:
        if isinstance(data.frame, TTSAudioRawFrame) and self.at is None:
            self.at = time.monotonic()


async def _speak(
    cloud: FakeCloud, tmp_path: Path, first: FirstAudio | None = None, **tts: Any
) -> tuple[list[Any], list[Any]]:
    settings = _settings(tmp_path, GROQ_API_KEY="gsk_x", OPENAI_API_KEY=KEY)
    tts_service = build_services(_agent(cloud, **tts), settings).tts
    down, up = await run_test(
        tts_service,
        frames_to_send=[TTSSpeakFrame(TEXT), SleepFrame(0.5)],
        observers=[first] if first else None,
    )
    return list(down), list(up)


async def test_synthesis_yields_the_served_pcm(cloud: FakeCloud, tmp_path: Path) -> None:
    # A Kokoro voice name: Pipecat's own run_tts would refuse anything outside OpenAI's list.
    down, up = await _speak(cloud, tmp_path, model="tts-1", voice="af_bella")
    audio = [f for f in down if isinstance(f, TTSAudioRawFrame)]
    assert b"".join(f.audio for f in audio) == AUDIO
    assert {f.sample_rate for f in audio} == {24000} and {f.num_channels for f in audio} == {1}
    assert len(audio[0].audio) == 24000 * 40 // 1000 * 2  # 40 ms, not Pipecat's 0.5 s
    (call,) = cloud.speech_calls
    assert call.path == "/v1/audio/speech"
    assert call.body == {
        "input": TEXT,
        "model": "tts-1",
        "voice": "af_bella",
        "response_format": "pcm",
    }
    assert not [f for f in up if isinstance(f, ErrorFrame)]


async def test_first_audio_goes_out_after_40_ms_arrive(tmp_path: Path) -> None:
    # The fake streams in real time: 0.5 s of audio takes 0.5 s to arrive.
    speech = SpeechOptions(synthesize=lambda _t: tone(1.0, 24000), speedup=1.0)
    first = FirstAudio()
    with FakeCloud(api_key=KEY, speech=speech) as cloud:
        await _speak(cloud, tmp_path, first, model="tts-1")
    assert first.at is not None
    # Pipecat's default chunking would wait for 0.5 s of audio; 40 ms frames leave at once.
    assert first.at - cloud.speech_calls[0].received_s < 0.3


async def test_wrong_key_is_reported_without_the_key(cloud: FakeCloud, tmp_path: Path) -> None:
    settings = _settings(tmp_path, GROQ_API_KEY="gsk_x", OPENAI_API_KEY=KEY)
    tts_service = build_services(_agent(cloud, "sk-wrong-secret", model="tts-1"), settings).tts
    _down, up = await run_test(tts_service, frames_to_send=[TTSSpeakFrame(TEXT), SleepFrame(0.3)])
    errors = [f.error for f in up if isinstance(f, ErrorFrame)]
    assert any("answered 401 (check OPENAI_API_KEY)" in e for e in errors), errors
    assert not any("secret" in e for e in errors)
