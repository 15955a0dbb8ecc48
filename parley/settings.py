"""Process settings from the environment (``PARLEY_*`` plus the providers' usual key names)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PARLEY_", extra="ignore")

    data_dir: Path = Field(default_factory=lambda: Path.home() / ".parley")
    log_level: str = "INFO"
    log_json: bool = False

    groq_api_key: str | None = Field(None, validation_alias=AliasChoices("GROQ_API_KEY"))
    groq_base_url: str = Field(
        "https://api.groq.com/openai/v1", validation_alias=AliasChoices("GROQ_BASE_URL")
    )
    deepgram_api_key: str | None = Field(None, validation_alias=AliasChoices("DEEPGRAM_API_KEY"))
    deepgram_base_url: str = Field("", validation_alias=AliasChoices("DEEPGRAM_BASE_URL"))
    openai_api_key: str | None = Field(None, validation_alias=AliasChoices("OPENAI_API_KEY"))
    openai_base_url: str | None = Field(None, validation_alias=AliasChoices("OPENAI_BASE_URL"))

    # LiveKit (rooms, SIP). Unset URL = embedded mode: the browser talks peer-to-peer to the API.
    livekit_url: str | None = Field(None, validation_alias=AliasChoices("LIVEKIT_URL"))
    # What browsers are told to connect to, when it differs from the URL servers use (compose).
    livekit_public_url: str | None = Field(
        None, validation_alias=AliasChoices("LIVEKIT_PUBLIC_URL")
    )
    livekit_api_key: str | None = Field(None, validation_alias=AliasChoices("LIVEKIT_API_KEY"))
    livekit_api_secret: str | None = Field(
        None, validation_alias=AliasChoices("LIVEKIT_API_SECRET")
    )
    # Workers register under this name; the API dispatches jobs to it explicitly.
    livekit_agent_name: str = "parley-agent"
    # `parley worker` runs its calls as threads on one event loop (see agents/livekit/call_loop.py)
    worker_threads: bool = False

    @property
    def livekit_enabled(self) -> bool:
        return bool(self.livekit_url and self.livekit_api_key and self.livekit_api_secret)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
