"""Deepgram streaming STT through Pipecat's DeepgramSTTService."""

from __future__ import annotations

from pipecat.services.deepgram.stt import DeepgramSTTService
from pipecat.transcriptions.language import Language

from parley.config import AgentConfig
from parley.settings import Settings


def make_stt(agent: AgentConfig, settings: Settings, default_model: str) -> DeepgramSTTService:
    return DeepgramSTTService(
        api_key=settings.deepgram_api_key or "",
        base_url=settings.deepgram_base_url,
        settings=DeepgramSTTService.Settings(
            model=agent.stt.model or default_model,
            language=Language(agent.language.split("-")[0]),
        ),
    )
