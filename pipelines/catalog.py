"""Pipeline graphs by name: what the operator registered, never code a tenant names.

Registered: the bundled graphs, then ``PARLEY_PIPELINES`` (``name=package.module:function``,
the operator's own code), then the ``parley.pipelines`` entry-point group of installed packages
(``name = "pkg.module:function"``). A config stored through the API may only name one of these,
and only a registered target is ever imported for it. An agent file run by its own author
(``parley talk --agent FILE``) may also give a ``package.module:function`` path.
"""

from __future__ import annotations

from importlib.metadata import EntryPoint, entry_points

from parley.config import AgentConfig
from parley.errors import ConfigError
from parley.settings import PIPELINE_NAME, Settings, get_settings
from pipelines import voice, voice_fillers
from pipelines.parts import Graph

BUNDLED: dict[str, Graph] = {"voice": voice.build, "voice_fillers": voice_fillers.build}
GROUP = "parley.pipelines"


def registered(settings: Settings) -> dict[str, str]:
    """Every pipeline the operator allows: name → ``package.module:function``."""
    found = {name: f"{fn.__module__}:{fn.__name__}" for name, fn in BUNDLED.items()}
    for name, target in settings.pipelines.items():
        found.setdefault(name, target)
    # Read each time (a few ms): cheap next to a call, and a package installed later counts.
    for ep in entry_points(group=GROUP):
        if PIPELINE_NAME.match(ep.name):
            found.setdefault(ep.name, ep.value)
    return found


def graph(agent: AgentConfig, settings: Settings | None = None) -> Graph:
    """The agent's graph. For an untrusted (stored) config only a registered name resolves, and
    it is refused before anything is imported."""
    name = agent.pipeline
    if name in BUNDLED:
        return BUNDLED[name]
    allowed = registered(settings or get_settings())
    if name in allowed:
        return _load(name, allowed[name])
    if not agent.trusted:
        raise ConfigError(_not_registered(name, allowed))
    return _load(name, name if ":" in name else f"{name}:build")


def stored_pipeline_problems(agent: AgentConfig, settings: Settings) -> list[str]:
    """A stored config may only name a pipeline the operator registered."""
    allowed = registered(settings)
    return [] if agent.pipeline in allowed else [_not_registered(agent.pipeline, allowed)]


def _not_registered(name: str, allowed: dict[str, str]) -> str:
    return (
        f"pipeline: {name[:80]!r} is not a registered pipeline (fix: use one of "
        f"{', '.join(sorted(allowed))}; the operator registers more with PARLEY_PIPELINES or "
        f"the {GROUP} entry-point group)"
    )


def _load(name: str, target: str) -> Graph:
    try:
        found = EntryPoint(name=name, value=target, group=GROUP).load()
    except (ImportError, AttributeError, ValueError) as err:
        raise ConfigError(
            f"pipeline {name!r} ({target}) could not be loaded ({err}); fix: install or correct "
            f"it, or use one of {sorted(BUNDLED)}"
        ) from None
    if not callable(found):
        raise ConfigError(f"pipeline {name!r} ({target}) is not a function taking Parts")
    graph_fn: Graph = found
    return graph_fn
