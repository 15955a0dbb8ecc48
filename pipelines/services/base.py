"""The one shape every provider has (like LiveKit's plugins): see ``pipelines.registry``."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from pipecat.services.llm_service import LLMService
from pipecat.services.stt_service import STTService
from pipecat.services.tts_service import TTSService

from parley.config import AgentConfig
from parley.errors import ProviderUnavailable
from parley.settings import Settings

Kind = Literal["stt", "llm", "tts"]
Service = STTService | LLMService[Any] | TTSService


@dataclass(frozen=True)
class ProviderEntry:
    kind: Kind
    name: str
    modules: tuple[str, ...]  # importable only when the extra is installed
    install: str  # the exact fix when a module is missing
    build: Callable[[AgentConfig, Settings], Service]
    configured: Callable[[AgentConfig, Settings], bool] = lambda _a, _s: True
    missing_config: str = ""  # the fix when ``configured`` is false
    prewarm: Callable[[AgentConfig, Settings], None] | None = None

    def check(self, agent: AgentConfig, settings: Settings) -> None:
        for module in self.modules:
            if importlib.util.find_spec(module) is None:
                raise ProviderUnavailable(
                    f"{self.kind} provider '{self.name}' needs the Python module '{module}' "
                    f"(fix: {self.install})"
                )
        if not self.configured(agent, settings):
            raise ProviderUnavailable(
                f"{self.kind} provider '{self.name}' is not configured (fix: {self.missing_config})"
            )
