"""The egress policy: the one way anything a tenant points at leaves the machine.

HTTP tools, agent-set provider base URLs and knowledge URLs (later webhooks and transfer
targets) go through here. Only http(s). A host name is resolved once, when a connection is
opened, every address it resolves to is checked, and the socket goes to a checked address: the
connection layer never asks DNS again, so a rebinding server gets no second answer. Loopback,
link-local (cloud metadata), private, shared (CGNAT), unspecified, multicast, reserved and
other non-public ranges, in any IPv6 spelling, are refused unless the operator allows a CIDR
(``PARLEY_EGRESS_ALLOW_CIDRS``). ``fetch`` adds a total deadline and a response-size cap
enforced while streaming.

Agent files run by their own author (``agent.trusted``, ``parley talk``) may reach any address:
it is their own machine and network. Configs stored through the API get the operator's policy.
"""

from __future__ import annotations

from parley.config import AgentConfig, HttpTool
from parley.egress.client import (
    DEFAULT_DEADLINE_S,
    DEFAULT_MAX_BYTES,
    MAX_REDIRECTS,
    EgressClient,
    EgressTransport,
    Fetched,
    Resolver,
    agent_http_client,
    egress_client,
    fetch,
    resolve_checked,
    system_resolver,
)
from parley.egress.rules import (
    Address,
    EgressBadURL,
    EgressDeadline,
    EgressError,
    EgressPolicy,
    EgressRedirects,
    EgressRefused,
    EgressTooLarge,
    EgressUnreachable,
    check_url,
    classify,
    embedded_ipv4,
    literal_ip,
)
from parley.settings import Settings

ALLOW_FIX = "ask the operator to allow its range in PARLEY_EGRESS_ALLOW_CIDRS"

__all__ = [
    "DEFAULT_DEADLINE_S",
    "DEFAULT_MAX_BYTES",
    "MAX_REDIRECTS",
    "Address",
    "EgressBadURL",
    "EgressClient",
    "EgressDeadline",
    "EgressError",
    "EgressPolicy",
    "EgressRedirects",
    "EgressRefused",
    "EgressTooLarge",
    "EgressTransport",
    "EgressUnreachable",
    "Fetched",
    "Resolver",
    "agent_http_client",
    "check_url",
    "classify",
    "config_url_problems",
    "egress_client",
    "embedded_ipv4",
    "fetch",
    "literal_ip",
    "resolve_checked",
    "system_resolver",
]


def config_url_problems(agent: AgentConfig, settings: Settings) -> list[str]:
    """URLs in a stored config that the policy refuses outright (scheme, literal addresses)."""
    policy = EgressPolicy.for_agent(agent, settings)
    urls = [
        (f"tools[{i}].url ({tool.name})", str(tool.url))
        for i, tool in enumerate(agent.tools)
        if isinstance(tool, HttpTool)
    ]
    if agent.llm.base_url is not None:
        urls.append(("llm.base_url", str(agent.llm.base_url)))
    if agent.tts.base_url is not None:
        urls.append(("tts.base_url", str(agent.tts.base_url)))
    problems = []
    for field, url in urls:
        try:
            check_url(url, policy)
        except EgressRefused as err:
            problems.append(f"{field}: {err} (fix: use a public address, or {ALLOW_FIX})")
    return problems
