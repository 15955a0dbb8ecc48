"""Stored agent configs, made ready to run: every runtime that runs an organization's agent
(the worker's calls, web P2P sessions, the API's ``/chat``) goes through here, so a stored
config is checked the same way everywhere and is bound to its organization's secrets.

Stored configs may predate the current rules (written by an older version, or before a
migration): each is parsed and checked again, and a refused one is a ``ConfigError`` whose
lines say what to fix, never a crash.
"""

from __future__ import annotations

import json
from typing import Any
from uuid import UUID

import asyncpg

from parley import secrets
from parley.config import AgentConfig, parse_agent
from parley.errors import ConfigError
from parley.settings import Settings
from pipelines.policy import check_stored_agent


def stored_source(agent_id: UUID | None) -> str:
    """How errors name a stored config, with where to fix it."""
    if agent_id is None:
        return "the stored agent config"
    return f"stored agent {agent_id} (replace it with PUT /v1/agents/{agent_id})"


def parse_stored(config: Any, settings: Settings, agent_id: UUID | None = None) -> AgentConfig:
    """A config as read from ``public.agents`` (jsonb or its text), parsed and checked as the
    API checks it before storing. Raises ConfigError (one line per problem)."""
    data = json.loads(config) if isinstance(config, str) else config
    agent = parse_agent(data, stored_source(agent_id))
    check_stored_agent(agent, settings)
    return agent


def one_line(err: ConfigError) -> str:
    """A ConfigError's lines as one (for logs and call failure reasons)."""
    first, *rest = str(err).splitlines()
    problems = "; ".join(line.strip().removeprefix("- ") for line in rest)
    return f"{first.rstrip(':')}: {problems}" if problems else first


async def load_secrets(
    conn: asyncpg.Connection, org_id: UUID, settings: Settings
) -> dict[str, str]:
    """The organization's secrets, decrypted. ``conn`` must be a service-path connection
    (private.org_secrets has no RLS policies: API roles read nothing)."""
    return await secrets.load(conn, secrets.key_ring(settings), org_id)


async def bind_secrets(
    conn: asyncpg.Connection, agent: AgentConfig, org_id: UUID, settings: Settings
) -> AgentConfig:
    """``agent`` with its organization's secrets bound for ``${secrets.NAME}``."""
    return agent.with_secrets(await load_secrets(conn, org_id, settings))
