"""OpenAI-compatible LLM through Pipecat's OpenAILLMService with a custom base URL."""

from __future__ import annotations

from typing import Any, cast

import httpx
from openai import AsyncOpenAI
from pipecat.services.openai.llm import OpenAILLMService

from parley.config import AgentConfig
from parley.egress import agent_http_client
from parley.settings import Settings
from pipelines.services.openai import api_key

# What Pipecat's own client allows (long-lived keep-alive connections for streaming).
_LIMITS = httpx.Limits(max_connections=1000, max_keepalive_connections=100, keepalive_expiry=None)


class EgressOpenAILLMService(OpenAILLMService):
    """Pipecat's OpenAI LLM on a given HTTP client (Pipecat builds its own otherwise)."""

    def __init__(self, *, http_client: httpx.AsyncClient | None = None, **kwargs: Any) -> None:
        self._egress_http = http_client  # read by create_client, which __init__ calls
        super().__init__(**kwargs)

    def create_client(
        self,
        api_key: Any = None,
        base_url: Any = None,
        organization: Any = None,
        project: Any = None,
        default_headers: Any = None,
        **kwargs: Any,
    ) -> AsyncOpenAI:
        if self._egress_http is None:
            return super().create_client(
                api_key, base_url, organization, project, default_headers, **kwargs
            )
        return AsyncOpenAI(
            api_key=api_key,
            base_url=base_url,
            organization=organization,
            project=project,
            # The SDK's own type is httpx2's client; it takes httpx clients as well.
            http_client=cast(Any, self._egress_http),
            default_headers=default_headers,
        )


def make_llm(agent: AgentConfig, settings: Settings, base_url: str | None) -> OpenAILLMService:
    if not agent.llm.model and base_url:
        raise_model_missing()
    return EgressOpenAILLMService(
        # A base_url the agent set is a tenant's destination: its connections go through the
        # egress policy. The operator's endpoint (OPENAI_BASE_URL) is not restricted.
        http_client=agent_http_client(agent, settings, limits=_LIMITS)
        if agent.llm.base_url
        else None,
        api_key=api_key(agent, "llm", settings),
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
