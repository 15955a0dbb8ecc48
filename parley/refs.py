"""References to secrets in agent configs: ``${secrets.NAME}`` (and ``${env.NAME}`` in agent
files run by their own author). Owned by the secrets work; see docs/security.md."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from parley.config import AgentConfig


def stored_ref_problems(agent: AgentConfig) -> list[str]:
    """Problems with the references of a config stored through the API (``${env.X}`` etc.)."""
    return []
