"""Egress rules: which destinations are public, what an operator allows, the typed errors."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import httpx

from parley.errors import ParleyError
from parley.settings import Settings

if TYPE_CHECKING:
    from parley.config import AgentConfig

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class EgressError(ParleyError):
    """A request to a tenant-chosen URL failed; ``host`` is the host it was for."""

    def __init__(self, message: str, host: str) -> None:
        super().__init__(message)
        self.host = host


class EgressRefused(EgressError):
    """The policy refuses the destination (``reason``; ``address``: what the name resolved to)."""

    def __init__(self, host: str, reason: str, address: Address | None = None) -> None:
        verb = "resolves to" if address is not None and literal_ip(host) is None else "is"
        super().__init__(f"refused by the egress policy: {host} {verb} {reason}", host)
        self.reason = reason
        self.address = address


class EgressBadURL(EgressRefused):
    """Not an http(s) URL with a host."""

    def __init__(self, url: str, why: str) -> None:
        EgressError.__init__(self, f"refused by the egress policy: {url[:200]!r} {why}", "")
        self.reason = why
        self.address = None


class EgressTooLarge(EgressError):
    """The response went past the size cap."""


class EgressDeadline(EgressError):
    """The whole exchange (connect, redirects, body) took longer than its deadline."""


class EgressUnreachable(EgressError):
    """DNS, connection or protocol failure."""


class EgressRedirects(EgressError):
    """More redirects than allowed."""


# --- classification -------------------------------------------------------------------------

_METADATA = frozenset(ipaddress.ip_address(a) for a in ("169.254.169.254", "fd00:ec2::254"))
_RULES: tuple[tuple[Network, str], ...] = tuple(
    (ipaddress.ip_network(net), reason)
    for net, reason in (
        ("0.0.0.0/8", "an unspecified address"),
        ("127.0.0.0/8", "a loopback address"),
        ("169.254.0.0/16", "a link-local address"),
        ("10.0.0.0/8", "a private address"),
        ("172.16.0.0/12", "a private address"),
        ("192.168.0.0/16", "a private address"),
        ("100.64.0.0/10", "a shared (CGNAT) address"),
        ("224.0.0.0/4", "a multicast address"),
        ("255.255.255.255/32", "the broadcast address"),
        ("240.0.0.0/4", "a reserved address"),
        ("::/128", "an unspecified address"),
        ("::1/128", "a loopback address"),
        ("fe80::/10", "a link-local address"),
        ("fec0::/10", "a private address"),
        ("fc00::/7", "a private address"),
        ("ff00::/8", "a multicast address"),
    )
)
# Translation prefixes that carry an IPv4 address in their low 32 bits (NAT64, SIIT).
_V4_TRANSLATED = tuple(
    ipaddress.ip_network(n) for n in ("64:ff9b::/96", "64:ff9b:1::/48", "::ffff:0:0:0/96")
)
_V4_COMPAT = ipaddress.ip_network("::/96")
_LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"})


def embedded_ipv4(address: Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 form carries (mapped, compatible, 6to4, NAT64, SIIT)."""
    if isinstance(address, ipaddress.IPv4Address):
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    low32 = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    if any(address in net for net in _V4_TRANSLATED):
        return low32
    if address in _V4_COMPAT and int(address) > 1:  # :: and ::1 are themselves
        return low32
    return None


def classify(address: Address) -> str | None:
    """Why ``address`` is not a public destination ("a loopback address", ...); None if it is."""
    if address in _METADATA:
        return "the cloud metadata address"
    inner = embedded_ipv4(address)
    if inner is not None:
        # The IPv6 spelling reaches the IPv4 host: judge that host.
        return classify(inner)
    for net, reason in _RULES:
        if address.version == net.version and address in net:
            return reason
    return None if address.is_global else "a non-public address"


def literal_ip(host: str) -> Address | None:
    """``host`` as an IP address, including legacy IPv4 spellings (``127.1``, ``0x7f000001``)."""
    host = host.strip("[]").split("%", 1)[0]
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    if host and all(c in "0123456789abcdefxABCDEFX." for c in host) and host[0].isdigit():
        try:
            return ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            return None
    return None


def is_loopback_name(host: str) -> bool:
    name = host.rstrip(".").lower()
    return name in _LOOPBACK_NAMES or name.endswith(".localhost")


@dataclass(frozen=True)
class EgressPolicy:
    """Which destinations are allowed: public addresses, plus ``allow_cidrs``; all if
    ``allow_all`` (trusted agent files)."""

    allow_all: bool = False
    allow_cidrs: tuple[Network, ...] = ()

    @classmethod
    def from_settings(cls, settings: Settings) -> EgressPolicy:
        return cls(allow_cidrs=parse_cidrs(settings.egress_allow_cidrs))

    @classmethod
    def for_agent(cls, agent: AgentConfig, settings: Settings) -> EgressPolicy:
        return cls.unrestricted() if agent.trusted else cls.from_settings(settings)

    @classmethod
    def unrestricted(cls) -> EgressPolicy:
        return cls(allow_all=True)

    def refusal(self, address: Address) -> str | None:
        """Why this policy refuses ``address``; None when it may be reached."""
        if self.allow_all:
            return None
        reason = classify(address)
        if reason is None:
            return None
        inner = embedded_ipv4(address)
        candidates = [address] if inner is None else [address, inner]
        allowed = any(
            a.version == net.version and a in net for a in candidates for net in self.allow_cidrs
        )
        return None if allowed else reason

    def check_host(self, host: str) -> Address | None:
        """Refuse a literal address or a loopback name before any lookup; the literal, if any."""
        literal = literal_ip(host)
        if literal is not None:
            reason = self.refusal(literal)
            if reason:
                raise EgressRefused(host, reason, literal)
        elif is_loopback_name(host) and self.refusal(ipaddress.IPv4Address("127.0.0.1")):
            raise EgressRefused(host, "a loopback name")
        return literal


def parse_cidrs(items: Iterable[str]) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(item, strict=False) for item in items)


def check_url(url: str | httpx.URL, policy: EgressPolicy) -> httpx.URL:
    """What can be refused without DNS: scheme, host, literal addresses, loopback names.

    Names are checked again, address by address, when a connection is opened."""
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError) as exc:
        raise EgressBadURL(str(url), f"is not a valid URL ({exc})") from None
    if parsed.scheme not in ("http", "https"):
        raise EgressBadURL(str(url), "is not an http:// or https:// URL")
    if not parsed.host:
        raise EgressBadURL(str(url), "has no host name")
    policy.check_host(parsed.host)
    return parsed
