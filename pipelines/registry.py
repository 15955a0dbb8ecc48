"""Provider registry: one shape for every provider, chosen by config or ``auto``.

Each ``pipelines/services/<provider>/`` package exports ``ENTRIES``: one
:class:`~pipelines.services.base.ProviderEntry` per service kind it offers. Entries import
their heavy modules lazily, inside ``build``, so the registry loads instantly and a missing
extra only matters for the provider actually chosen.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pipecat.services.llm_service import LLMService
from pipecat.services.stt_service import STTService
from pipecat.services.tts_service import TTSService

from parley.config import AgentConfig
from parley.errors import ProviderUnavailable
from parley.settings import Settings
from pipelines.services import deepgram, groq, local, openai
from pipelines.services.base import Kind, ProviderEntry

# ``auto`` takes the first configured provider in this order: clouds when their key is set.
AUTO_ORDER: dict[Kind, tuple[str, ...]] = {
    "stt": ("deepgram", "groq", "local"),
    "llm": ("groq", "openai", "local"),
    # An OpenAI key or URL often serves only chat (Ollama, vLLM), so TTS ``openai`` is opt-in.
    "tts": ("local",),
}


def _entries() -> dict[tuple[Kind, str], ProviderEntry]:
    table: dict[tuple[Kind, str], ProviderEntry] = {}
    for pkg in (local, groq, deepgram, openai):
        for e in pkg.ENTRIES:
            table[(e.kind, e.name)] = e
    return table


@dataclass(frozen=True)
class Resolved:
    stt: ProviderEntry
    llm: ProviderEntry
    tts: ProviderEntry

    def names(self) -> dict[str, str]:
        return {"stt": self.stt.name, "llm": self.llm.name, "tts": self.tts.name}


def _chosen(agent: AgentConfig, kind: Kind) -> str:
    provider: str = getattr(agent, kind).provider
    return provider


def auto_choice(kind: Kind, agent: AgentConfig, settings: Settings) -> str:
    """The provider ``auto`` picks for ``kind`` under these settings (extras not checked)."""
    table = _entries()
    for name in AUTO_ORDER[kind]:
        if table[(kind, name)].configured(agent, settings):
            return name
    return AUTO_ORDER[kind][-1]


def resolve(agent: AgentConfig, settings: Settings) -> Resolved:
    """Pick the provider entry for each kind and check it is usable (extra + key/model)."""
    table = _entries()
    picked: dict[Kind, ProviderEntry] = {}
    for kind in ("stt", "llm", "tts"):
        choice = _chosen(agent, kind)
        if choice == "auto":
            picked[kind] = table[(kind, auto_choice(kind, agent, settings))]
        else:
            if (kind, choice) not in table:
                raise ProviderUnavailable(f"unknown {kind} provider {choice!r}")
            picked[kind] = table[(kind, choice)]
        picked[kind].check(agent, settings)
    return Resolved(stt=picked["stt"], llm=picked["llm"], tts=picked["tts"])


@dataclass
class Services:
    stt: STTService
    llm: LLMService[Any]
    tts: TTSService
    providers: dict[str, str]


def build_services(agent: AgentConfig, settings: Settings) -> Services:
    r = resolve(agent, settings)
    stt, llm, tts = (e.build(agent, settings) for e in (r.stt, r.llm, r.tts))
    assert isinstance(stt, STTService) and isinstance(llm, LLMService)
    assert isinstance(tts, TTSService)
    return Services(stt=stt, llm=llm, tts=tts, providers=r.names())


def prewarm(agent: AgentConfig, settings: Settings) -> dict[str, str]:
    """Load every model the agent's providers need, once per process (not per call)."""
    r = resolve(agent, settings)
    for entry in (r.stt, r.llm, r.tts):
        if entry.prewarm is not None:
            entry.prewarm(agent, settings)
    return r.names()
