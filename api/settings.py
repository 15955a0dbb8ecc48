"""API settings (env): identity provider, CORS, limits."""

from __future__ import annotations

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class ApiSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PARLEY_API_", extra="ignore")

    # Supabase Auth: HS256 project secret and/or the project URL (its JWKS for ES256/RS256 keys).
    supabase_jwt_secret: str | None = Field(
        None, validation_alias=AliasChoices("SUPABASE_JWT_SECRET", "PARLEY_API_SUPABASE_JWT_SECRET")
    )
    supabase_url: str | None = Field(
        None, validation_alias=AliasChoices("SUPABASE_URL", "PARLEY_API_SUPABASE_URL")
    )
    jwt_audience: str = "authenticated"
    cors_origins: list[str] = Field(default_factory=list)
    max_body_bytes: int = Field(1_000_000, description="JSON bodies; uploads have their own limit.")
    max_upload_bytes: int = Field(20_000_000)
    rate_per_sec: float = Field(20.0, gt=0)
    rate_burst: int = Field(60, ge=1)
    failed_auth_per_min: int = Field(10, ge=1, description="Per client address.")
    # Shared rate limits across API replicas (redis://host:6379/0); unset = per process.
    redis_url: str | None = None
    # Embedded peer-to-peer mode: load the default agent's models at start-up, in the
    # background, so the first browser call does not wait for them (`parley up` turns it on).
    prewarm_models: bool = False
    # LiveKit mode: a web session is handed out once the agent is in its room (so the
    # greeting starts as soon as the caller arrives); no agent by then = 503.
    agent_join_timeout_secs: float = Field(10.0, gt=0, le=60)
    # POST /v1/agents/{id}/chat: the whole reply (LLM, tools, teardown) within this.
    chat_timeout_secs: float = Field(60.0, gt=0, le=300)

    @property
    def jwks_url(self) -> str | None:
        if not self.supabase_url:
            return None
        return self.supabase_url.rstrip("/") + "/auth/v1/.well-known/jwks.json"
