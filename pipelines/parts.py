"""The building blocks a pipeline graph is assembled from (see ``pipelines/voice.py``)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pipecat.processors.aggregators.llm_response_universal import (
    LLMAssistantAggregator,
    LLMUserAggregator,
)
from pipecat.processors.frame_processor import FrameProcessor
from pipecat.services.llm_service import LLMService
from pipecat.services.stt_service import STTService
from pipecat.services.tts_service import TTSService
from pipecat.transports.base_transport import BaseTransport

from parley.config import AgentConfig


@dataclass(frozen=True)
class Parts:
    """Ready-made processors for one call. A graph orders them and may add its own."""

    agent: AgentConfig
    transport: BaseTransport
    stt: STTService
    user: LLMUserAggregator  # holds the VAD and the turn strategies
    llm: LLMService[Any]
    speech_text: FrameProcessor  # cuts LLM text into pieces for TTS
    tts: TTSService
    assistant: LLMAssistantAggregator


Graph = Callable[[Parts], list[FrameProcessor]]
