"""Any OpenAI-compatible chat endpoint: Ollama, vLLM, llama.cpp server, OpenAI itself."""

from __future__ import annotations

from parley.config import AgentConfig
from parley.settings import Settings
from pipelines.services.base import ProviderEntry, Service


def base_url(agent: AgentConfig, settings: Settings) -> str | None:
    return str(agent.llm.base_url) if agent.llm.base_url else settings.openai_base_url


def _configured(agent: AgentConfig, settings: Settings) -> bool:
    return base_url(agent, settings) is not None or bool(settings.openai_api_key)


def _llm(agent: AgentConfig, settings: Settings) -> Service:
    from pipelines.services.openai.llm import make_llm

    return make_llm(agent, settings, base_url(agent, settings))


ENTRIES = (
    ProviderEntry(
        kind="llm",
        name="openai",
        modules=("openai",),
        install="pip install 'parley[openai]'",
        build=_llm,
        configured=_configured,
        missing_config="set llm.base_url in the agent, or OPENAI_BASE_URL / OPENAI_API_KEY",
    ),
)
