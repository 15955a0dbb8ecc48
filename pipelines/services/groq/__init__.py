"""Groq: LLM (OpenAI-compatible chat) and Whisper STT (segmented uploads)."""

from __future__ import annotations

from parley.config import AgentConfig
from parley.settings import Settings
from pipelines.services.base import ProviderEntry, Service

DEFAULT_LLM = "llama-3.3-70b-versatile"
DEFAULT_STT = "whisper-large-v3-turbo"
_INSTALL = "pip install 'parley[groq]'"
_KEY = "export GROQ_API_KEY=... (https://console.groq.com/keys)"


def _has_key(agent: AgentConfig, settings: Settings) -> bool:
    return bool(settings.groq_api_key)


def _stt(agent: AgentConfig, settings: Settings) -> Service:
    from pipelines.services.groq.stt import make_stt

    return make_stt(agent, settings, DEFAULT_STT)


def _llm(agent: AgentConfig, settings: Settings) -> Service:
    from pipelines.services.groq.llm import make_llm

    return make_llm(agent, settings, DEFAULT_LLM)


ENTRIES = (
    ProviderEntry(
        kind="stt",
        name="groq",
        modules=("groq",),
        install=_INSTALL,
        build=_stt,
        configured=_has_key,
        missing_config=_KEY,
    ),
    ProviderEntry(
        kind="llm",
        name="groq",
        modules=("groq",),
        install=_INSTALL,
        build=_llm,
        configured=_has_key,
        missing_config=_KEY,
    ),
)
