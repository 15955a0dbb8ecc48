"""Deepgram: streaming STT over a websocket (interim + final results)."""

from __future__ import annotations

from parley.config import AgentConfig
from parley.settings import Settings
from pipelines.services.base import ProviderEntry, Service

DEFAULT_STT = "nova-3-general"


def _has_key(agent: AgentConfig, settings: Settings) -> bool:
    return bool(settings.deepgram_api_key)


def _stt(agent: AgentConfig, settings: Settings) -> Service:
    from pipelines.services.deepgram.stt import make_stt

    return make_stt(agent, settings, DEFAULT_STT)


ENTRIES = (
    ProviderEntry(
        kind="stt",
        name="deepgram",
        modules=("deepgram",),
        install="pip install 'parley[deepgram]'",
        build=_stt,
        configured=_has_key,
        missing_config="export DEEPGRAM_API_KEY=... (https://console.deepgram.com)",
    ),
)
