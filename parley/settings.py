"""Process settings from the environment (``PARLEY_*`` plus the providers' usual key names)."""

from __future__ import annotations

import ipaddress
import json
import re
from functools import lru_cache
from pathlib import Path
from typing import Annotated

from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

# A registered pipeline's name (what an agent config's ``pipeline`` names) and its target.
PIPELINE_NAME = re.compile(r"^[A-Za-z_][\w.]{0,63}$")
PIPELINE_TARGET = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")
_PIPELINES_FIX = "fix: PARLEY_PIPELINES=name=package.module:function,other=pkg.mod:build"


def _parse_pipelines(value: object) -> object:
    if isinstance(value, str):
        entries: dict[str, str] = {}
        for item in filter(None, (part.strip() for part in value.split(","))):
            name, sep, target = item.partition("=")
            if not sep:
                raise ValueError(f"{item!r} is not name=package.module:function ({_PIPELINES_FIX})")
            entries[name.strip()] = target.strip()
        value = entries
    if isinstance(value, dict):
        for name, target in value.items():
            if not PIPELINE_NAME.match(str(name)) or not PIPELINE_TARGET.match(str(target)):
                raise ValueError(
                    f"{name}={target} is not name=package.module:function with a name of "
                    f"letters, digits, _ or . ({_PIPELINES_FIX})"
                )
    return value


_CIDRS_FIX = "fix: PARLEY_EGRESS_ALLOW_CIDRS=10.1.0.0/16,fd00:1::/64"


def _parse_cidrs(value: object) -> object:
    # Comma-separated or a JSON list; each entry normalised (10.1.2.3/8 -> 10.0.0.0/8).
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            try:
                value = json.loads(text)
            except ValueError:
                raise ValueError(f"is not a JSON list of CIDRs ({_CIDRS_FIX})") from None
        else:
            value = [part.strip() for part in text.split(",") if part.strip()]
    if isinstance(value, list | tuple):
        out = []
        for item in value:
            try:
                out.append(str(ipaddress.ip_network(str(item).strip(), strict=False)))
            except ValueError:
                raise ValueError(
                    f"{str(item)[:60]!r} is not a CIDR such as 10.0.0.0/8 ({_CIDRS_FIX})"
                ) from None
        return out
    return value


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
    # Pipelines agent configs may name besides the bundled ones (the operator's own code; an
    # installed package can register through the ``parley.pipelines`` entry-point group).
    pipelines: Annotated[dict[str, str], NoDecode] = Field(default_factory=dict)

    @field_validator("pipelines", mode="before")
    @classmethod
    def _pipelines(cls, value: object) -> object:
        return _parse_pipelines(value)

    # Encrypts organization secrets (parley/secrets.py): base64 of 32 bytes; old keys still
    # decrypt during a rotation. Unset: a key generated once into <data_dir>/secrets.key.
    secrets_key: str | None = Field(None, repr=False)
    secrets_old_keys: str = Field("", repr=False)

    # Ranges tenants' HTTP tools and provider URLs may reach besides public addresses (an
    # intranet service, a local model server): private, loopback and metadata are refused.
    egress_allow_cidrs: Annotated[list[str], NoDecode] = Field(default_factory=list)

    @field_validator("egress_allow_cidrs", mode="before")
    @classmethod
    def _egress_allow_cidrs(cls, value: object) -> object:
        return _parse_cidrs(value)

    @property
    def livekit_enabled(self) -> bool:
        return bool(self.livekit_url and self.livekit_api_key and self.livekit_api_secret)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
