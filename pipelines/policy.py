"""What an agent config stored by an organization may use: tenants are untrusted.

A config written through the API never reads the server's environment, never picks code to
import or files to open, and reaches the network only through the egress policy. The API
checks this before storing a config, and runtimes check it again before running a stored one
(configs stored by older versions). Agent files run by their own author (``parley talk``)
are trusted and skip this check.
"""

from __future__ import annotations

from parley.config import AgentConfig
from parley.egress import config_url_problems
from parley.errors import ConfigError
from parley.refs import stored_ref_problems
from parley.settings import Settings
from pipelines.catalog import stored_pipeline_problems
from pipelines.services.local.models import catalogue_problems


def stored_agent_problems(agent: AgentConfig, settings: Settings) -> list[str]:
    """One line per problem (``field: what is wrong (fix: ...)``); empty when allowed."""
    return [
        *stored_ref_problems(agent),
        *stored_pipeline_problems(agent, settings),
        *catalogue_problems(agent, settings),
        *config_url_problems(agent, settings),
    ]


def check_stored_agent(agent: AgentConfig, settings: Settings) -> None:
    problems = stored_agent_problems(agent, settings)
    if problems:
        raise ConfigError(
            "agent config is not allowed:\n" + "\n".join(f"  - {p}" for p in problems)
        )
