"""Provider registry: ``auto`` picks clouds by key, explicit choices explain what is missing,
and every provider combination assembles into the same pipeline shape."""

from __future__ import annotations

import importlib.util
from importlib.machinery import ModuleSpec
from pathlib import Path

import pytest
from pipecat.services.deepgram.stt import DeepgramSTTService
from pipecat.services.groq.llm import GroqLLMService
from pipecat.services.groq.stt import GroqSTTService
from pipecat.services.openai.llm import OpenAILLMService

from agents.file.transport import CallerScript, FileTransport
from parley.config import parse_agent
from parley.errors import ConfigError, ProviderUnavailable
from parley.settings import Settings
from pipelines.graph import build_session
from pipelines.registry import build_services, resolve
from pipelines.services.local.llm import LocalLlamaLLMService
from pipelines.services.local.stt import LocalWhisperSTTService
from pipelines.services.local.tts import LocalPiperTTSService
from tests.conftest import make_agent


def _settings(tmp_path: Path, **kw: str) -> Settings:
    return Settings(data_dir=tmp_path, **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, ("local", "local", "local")),
        ({"GROQ_API_KEY": "gsk_x"}, ("groq", "groq", "local")),
        ({"GROQ_API_KEY": "gsk_x", "DEEPGRAM_API_KEY": "dg"}, ("deepgram", "groq", "local")),
        ({"OPENAI_BASE_URL": "http://127.0.0.1:11434/v1"}, ("local", "openai", "local")),
    ],
)
def test_auto_prefers_configured_clouds(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, env: dict[str, str], expected: tuple[str, ...]
) -> None:
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    names = resolve(make_agent(), Settings(data_dir=tmp_path)).names()
    assert (names["stt"], names["llm"], names["tts"]) == expected


def test_explicit_cloud_without_key_says_how_to_fix(tmp_path: Path) -> None:
    agent = make_agent(llm={"provider": "groq"})
    with pytest.raises(ProviderUnavailable, match=r"export GROQ_API_KEY"):
        resolve(agent, Settings(data_dir=tmp_path))
    agent = make_agent(stt={"provider": "deepgram"})
    with pytest.raises(ProviderUnavailable, match=r"DEEPGRAM_API_KEY"):
        resolve(agent, Settings(data_dir=tmp_path))


def test_missing_extra_names_the_install_command(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    real = importlib.util.find_spec

    def without_groq(name: str, package: str | None = None) -> ModuleSpec | None:
        return None if name == "groq" else real(name, package)

    monkeypatch.setattr("pipelines.services.base.importlib.util.find_spec", without_groq)
    monkeypatch.setenv("GROQ_API_KEY", "gsk_x")
    with pytest.raises(ProviderUnavailable, match=r"pip install 'parley\[groq\]'"):
        resolve(make_agent(), Settings(data_dir=tmp_path))


def test_openai_compatible_needs_a_model_name(tmp_path: Path) -> None:
    agent = make_agent(llm={"provider": "openai", "base_url": "http://127.0.0.1:9/v1"})
    with pytest.raises(ConfigError, match="llm.model is required"):
        build_services(agent, Settings(data_dir=tmp_path))


def test_unknown_piper_voice_is_reported(tmp_path: Path) -> None:
    agent = make_agent(tts={"voice": "en_GB-nobody-low"})
    with pytest.raises(ProviderUnavailable, match="en_GB-nobody-low.*not found"):
        build_services(agent, Settings(data_dir=tmp_path))


COMBOS = [
    (
        {},
        {},
        (LocalWhisperSTTService, LocalLlamaLLMService, LocalPiperTTSService),
    ),
    (
        {"GROQ_API_KEY": "gsk_test", "GROQ_BASE_URL": "http://127.0.0.1:9/openai/v1"},
        {},
        (GroqSTTService, GroqLLMService, LocalPiperTTSService),
    ),
    (
        {"DEEPGRAM_API_KEY": "dg_test", "DEEPGRAM_BASE_URL": "ws://127.0.0.1:9"},
        {"llm": {"provider": "openai", "base_url": "http://127.0.0.1:9/v1", "model": "m"}},
        (DeepgramSTTService, OpenAILLMService, LocalPiperTTSService),
    ),
]


@pytest.mark.parametrize(("env", "agent_kw", "classes"), COMBOS)
def test_pipeline_assembly_per_provider_combination(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    env: dict[str, str],
    agent_kw: dict[str, object],
    classes: tuple[type, ...],
) -> None:
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    agent = make_agent(tools=[{"type": "end_call"}], **agent_kw)
    services = build_services(agent, Settings(data_dir=tmp_path))
    transport = FileTransport(CallerScript([]))
    session = build_session(agent, transport, services)
    procs = session.pipeline.processors
    # Between the pipeline's own source and sink: in → STT → user agg → (input audio stops)
    # → LLM → text → TTS → out → agg.
    core = [p for p in procs if type(p).__name__ not in ("PipelineSource", "PipelineSink")]
    assert len(core) == 9, [type(p).__name__ for p in procs]
    assert isinstance(core[1], classes[0]) and isinstance(core[4], classes[1])
    assert type(core[3]).__name__ == "InputAudioStop"
    assert type(core[5]).__name__ == "LLMTextProcessor"
    assert isinstance(core[6], classes[2])
    assert type(core[0]).__name__ == "FileInputTransport"
    assert type(core[2]).__name__ == "LLMUserAggregator"
    assert type(core[7]).__name__ == "FileOutputTransport"
    assert type(core[8]).__name__ == "LLMAssistantAggregator"
    tools = session.context.tools
    assert [t.name for t in tools.standard_tools] == ["end_call"]  # type: ignore[union-attr]


def test_pipeline_graph_by_name_or_import_path(tmp_path: Path) -> None:
    from pipelines import catalog, voice

    settings = Settings(data_dir=tmp_path)
    assert catalog.graph(make_agent(pipeline="voice"), settings) is voice.build
    # An import path only from an agent file run by its author (see tests/unit/test_catalog.py).
    authored = make_agent(pipeline="pipelines.voice:build").as_trusted()
    assert catalog.graph(authored, settings) is voice.build
    with pytest.raises(ConfigError, match="pipeline 'nowhere.graph:build' .*could not be loaded"):
        catalog.graph(make_agent(pipeline="nowhere.graph:build").as_trusted(), settings)
    with pytest.raises(ConfigError, match="- pipeline: String should match pattern"):
        parse_agent({"name": "a", "system_prompt": "b", "pipeline": "not a name!"})
