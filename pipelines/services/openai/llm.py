"""OpenAI-compatible LLM through Pipecat's OpenAILLMService with a custom base URL."""

from __future__ import annotations

from pipecat.services.openai.llm import OpenAILLMService

from parley.config import AgentConfig
from parley.settings import Settings


def make_llm(agent: AgentConfig, settings: Settings, base_url: str | None) -> OpenAILLMService:
    if not agent.llm.model and base_url:
        raise_model_missing()
    return OpenAILLMService(
        # Local servers (Ollama, vLLM) accept any key; the SDK insists on a non-empty one.
        api_key=settings.openai_api_key or "not-needed",
        base_url=base_url,
        settings=OpenAILLMService.Settings(
            model=agent.llm.model or "gpt-4.1-mini",
            system_instruction=agent.system_prompt,
            temperature=agent.llm.temperature,
            max_tokens=agent.llm.max_tokens,
        ),
    )


def raise_model_missing() -> None:
    from parley.errors import ConfigError

    raise ConfigError(
        "llm.model is required with an OpenAI-compatible base_url "
        "(fix: set llm.model to a model the server serves, e.g. llama3.2 for Ollama)"
    )
