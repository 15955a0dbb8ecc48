"""Database settings: ``DATABASE_URL`` (unset = embedded Postgres) plus ``PARLEY_DB_*``."""

from __future__ import annotations

from pathlib import Path

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

# The repository's supabase/ folder (migrations, seed.sql, config.toml).
DEFAULT_SUPABASE_DIR = Path(__file__).resolve().parents[2] / "supabase"


class DatabaseSettings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="PARLEY_DB_", extra="ignore", populate_by_name=True
    )

    url: str | None = Field(
        None,
        validation_alias=AliasChoices("DATABASE_URL", "PARLEY_DB_URL"),
        description="postgresql://user:password@host:port/db; unset = the embedded Postgres.",
    )
    embedded_dir: Path | None = Field(
        None, description="Embedded Postgres data dir; None = Settings().data_dir / 'pg'."
    )
    supabase_dir: Path = Field(
        DEFAULT_SUPABASE_DIR, description="Folder holding migrations/ and seed.sql."
    )
    auto_migrate: bool = Field(True, description="Apply pending migrations at start-up.")
    pool_min_size: int = Field(1, ge=0, le=100)
    pool_max_size: int = Field(10, ge=1, le=1000)
