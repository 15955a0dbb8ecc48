"""Groq LLM through Pipecat's GroqLLMService (OpenAI-compatible streaming, tools)."""

from __future__ import annotations

from pipecat.services.groq.llm import GroqLLMService

from parley.config import AgentConfig
from parley.settings import Settings


def make_llm(agent: AgentConfig, settings: Settings, default_model: str) -> GroqLLMService:
    return GroqLLMService(
        api_key=settings.groq_api_key or "",
        base_url=settings.groq_base_url,
        settings=GroqLLMService.Settings(
            model=agent.llm.model or default_model,
            system_instruction=agent.system_prompt,
            temperature=agent.llm.temperature,
            max_tokens=agent.llm.max_tokens,
        ),
    )
