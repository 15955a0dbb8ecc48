"""Any OpenAI-compatible server: chat (Ollama, vLLM, llama.cpp server, OpenAI itself) and
speech (``/v1/audio/speech``: OpenAI, Kokoro-FastAPI, Speaches)."""

from __future__ import annotations

from parley.config import AgentConfig
from parley.errors import ProviderUnavailable
from parley.refs import MissingSecret, expand
from parley.settings import Settings
from pipelines.services.base import ProviderEntry, Service


def base_url(agent: AgentConfig, settings: Settings) -> str | None:
    return str(agent.llm.base_url) if agent.llm.base_url else settings.openai_base_url


def tts_base_url(agent: AgentConfig, settings: Settings) -> str | None:
    return str(agent.tts.base_url) if agent.tts.base_url else settings.openai_base_url


def api_key(agent: AgentConfig, kind: str, settings: Settings) -> str:
    """The key sent with ``kind``'s requests. The server's OPENAI_API_KEY goes only to the
    server's own endpoint; an agent that sets its own base_url sends only its own key (a
    secret reference), or a placeholder that keyless local servers (Ollama) accept."""
    choice = agent.llm if kind == "llm" else agent.tts
    if choice.base_url is None:
        return settings.openai_api_key or "not-needed"
    if choice.api_key is None:
        return "not-needed"
    try:
        return expand(choice.api_key, agent)
    except MissingSecret as err:
        raise ProviderUnavailable(f"{kind}.api_key: {err}") from None


def _configured(agent: AgentConfig, settings: Settings) -> bool:
    return base_url(agent, settings) is not None or bool(settings.openai_api_key)


def _tts_configured(agent: AgentConfig, settings: Settings) -> bool:
    # No URL and no key would mean "api.openai.com without a key": fails on the first word.
    return tts_base_url(agent, settings) is not None or bool(settings.openai_api_key)


def _llm(agent: AgentConfig, settings: Settings) -> Service:
    from pipelines.services.openai.llm import make_llm

    return make_llm(agent, settings, base_url(agent, settings))


def _tts(agent: AgentConfig, settings: Settings) -> Service:
    from pipelines.services.openai.tts import make_tts

    return make_tts(agent, settings, tts_base_url(agent, settings))


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
    ProviderEntry(
        kind="tts",
        name="openai",
        modules=("openai",),
        install="pip install 'parley[openai]'",
        build=_tts,
        configured=_tts_configured,
        missing_config="set tts.base_url in the agent, or OPENAI_BASE_URL / OPENAI_API_KEY",
    ),
)
