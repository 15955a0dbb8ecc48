"""Groq Whisper STT through Pipecat's GroqSTTService."""

from __future__ import annotations

from pipecat.services.groq.stt import GroqSTTService
from pipecat.transcriptions.language import Language

from parley.config import AgentConfig
from parley.settings import Settings


def make_stt(agent: AgentConfig, settings: Settings, default_model: str) -> GroqSTTService:
    return GroqSTTService(
        api_key=settings.groq_api_key or "",
        base_url=settings.groq_base_url,
        settings=GroqSTTService.Settings(
            model=agent.stt.model or default_model,
            language=Language(agent.language.split("-")[0]),
        ),
    )
