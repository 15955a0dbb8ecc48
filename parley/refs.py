"""References to secrets in agent configs: ``${secrets.NAME}``, and ``${env.NAME}`` in agent
files run by their own author (``parley talk``). A config never reads the server's environment:
stored configs may only name their organization's secrets (see docs/security.md)."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any, Protocol

from parley.errors import ParleyError


class Bound(Protocol):
    """What expansion reads of an agent config (parley.config imports this module)."""

    @property
    def trusted(self) -> bool: ...

    @property
    def secrets(self) -> Mapping[str, str]: ...


REF = re.compile(r"\$\{(?:(secrets|env)\.)?([A-Za-z_][A-Za-z0-9_]*)\}")
ONE_REF = re.compile(r"^\$\{(secrets|env)\.[A-Z][A-Z0-9_]{0,63}\}$")
SECRET_NAME = re.compile(r"^[A-Z][A-Z0-9_]{0,63}$")  # what an organization may store


class MissingSecret(ParleyError):
    """A reference names a secret the organization has not stored (or env not allowed)."""


def ref_problem(value: str) -> str | None:
    """Why ``value``'s references are malformed (the old bare ``${NAME}`` form), or None."""
    for m in REF.finditer(value):
        if m.group(1) is None:
            name = m.group(2)
            return (
                f"${{{name}}} would read the server's environment (fix: use "
                f"${{secrets.{name}}} and store it with PUT /v1/secrets/{name})"
            )
    return None


def _values(agent: Any) -> list[tuple[str, str]]:
    out = [
        (f"tools.{t.name}.headers.{k}", v)
        for t in agent.tools
        for k, v in getattr(t, "headers", {}).items()
    ]
    for kind in ("llm", "tts"):
        key = getattr(agent, kind).api_key
        if key:
            out.append((f"{kind}.api_key", key))
    return out


def stored_ref_problems(agent: Any) -> list[str]:
    """Problems with the references of a config stored through the API (``${env.X}``)."""
    return [
        f"{field}: configs stored through the API cannot read the server's environment "
        "(fix: use ${secrets.NAME})"
        for field, value in _values(agent)
        if any(m.group(1) == "env" for m in REF.finditer(value))
    ]


def expand(value: str, agent: Bound) -> str:
    """Fill the references of ``value``: ``${secrets.X}`` from the agent's bound secrets,
    ``${env.X}`` from this process's environment only for a trusted agent file."""

    def one(m: re.Match[str]) -> str:
        kind, name = m.group(1), m.group(2)
        if kind == "secrets":
            if name in agent.secrets:
                return agent.secrets[name]
            if not SECRET_NAME.match(name):  # e.g. a lower-case name migrated from ${name}
                raise MissingSecret(
                    f"secret names are upper case: {name} can't be stored (fix: reference "
                    f"${{secrets.{name.upper()}}} and store it with PUT /v1/secrets/"
                    f"{name.upper()})"
                )
            raise MissingSecret(
                f"secret {name} is not set (fix: store it with PUT /v1/secrets/{name})"
            )
        if kind == "env" and agent.trusted:
            if name in os.environ:
                return os.environ[name]
            raise MissingSecret(f"environment variable {name} is not set (fix: export {name}=...)")
        raise MissingSecret(f"the reference {m.group(0)} is not allowed in this config")

    return REF.sub(one, value)
