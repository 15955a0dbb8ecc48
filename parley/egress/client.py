"""Egress connections: resolve once, check every address, connect to a checked one; one
bounded exchange (total deadline, size cap while streaming, redirects re-checked)."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import ssl
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import httpcore
import httpx
from loguru import logger

from parley.egress.rules import (
    Address,
    EgressDeadline,
    EgressPolicy,
    EgressRedirects,
    EgressRefused,
    EgressTooLarge,
    EgressUnreachable,
    check_url,
)

if TYPE_CHECKING:
    from parley.config import AgentConfig
    from parley.settings import Settings

# (host, port) -> the addresses the host resolves to; tests pass their own.
Resolver = Callable[[str, int], Awaitable[Sequence[str]]]

MAX_REDIRECTS = 5
DEFAULT_MAX_BYTES = 256 * 1024
DEFAULT_DEADLINE_S = 10.0


async def system_resolver(host: str, port: int) -> list[str]:
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


async def resolve_checked(
    host: str, port: int, policy: EgressPolicy, resolver: Resolver = system_resolver
) -> list[Address]:
    """Resolve ``host`` once and check every address; the addresses to connect to."""
    literal = policy.check_host(host)
    if literal is not None:
        return [literal]
    try:
        answers = await resolver(host, port)
    except OSError as exc:
        raise EgressUnreachable(f"cannot resolve {host} ({exc})", host) from None
    addresses: list[Address] = []
    for answer in answers:
        address = ipaddress.ip_address(answer.split("%", 1)[0])
        reason = policy.refusal(address)
        if reason:
            raise EgressRefused(host, reason, address)
        if address not in addresses:
            addresses.append(address)
    if not addresses:
        raise EgressUnreachable(f"cannot resolve {host} (no addresses)", host)
    return addresses


class _CheckedBackend(httpcore.AsyncNetworkBackend):
    """httpcore's socket layer: every TCP connection goes to a checked address of its host
    (TLS still verifies the certificate against the host name httpcore passes as SNI)."""

    def __init__(self, policy: EgressPolicy, resolver: Resolver) -> None:
        self._policy = policy
        self._resolver = resolver
        self._inner = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's interface)
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        try:
            async with asyncio.timeout(timeout):
                addresses = await resolve_checked(host, port, self._policy, self._resolver)
        except TimeoutError:
            raise httpcore.ConnectTimeout(f"resolving {host} timed out") from None
        except EgressRefused as err:
            logger.warning(f"egress refused: {host}:{port} ({err.reason}, {err.address})")
            raise
        last: Exception | None = None
        for address in addresses:
            try:
                return await self._inner.connect_tcp(
                    str(address), port, timeout, local_address, socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                last = exc
        assert last is not None
        raise last

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's interface)
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise EgressRefused(path, "a unix socket")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class EgressTransport(httpx.AsyncHTTPTransport):
    """httpx's transport with the checked socket layer (no proxies, no environment)."""

    def __init__(
        self,
        policy: EgressPolicy,
        *,
        resolver: Resolver = system_resolver,
        limits: httpx.Limits | None = None,
        verify: ssl.SSLContext | bool = True,
    ) -> None:
        limits = limits or httpx.Limits(max_connections=100, max_keepalive_connections=20)
        super().__init__(trust_env=False, limits=limits)
        # httpx has no public way to give its pool a socket layer: build the same pool with ours.
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=httpx.create_ssl_context(verify=verify, trust_env=False),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=_CheckedBackend(policy, resolver),
        )


class EgressClient(httpx.AsyncClient):
    """An httpx client whose every connection goes through ``policy``."""

    def __init__(
        self, policy: EgressPolicy, *, resolver: Resolver = system_resolver, **kwargs: Any
    ) -> None:
        # The transport makes the connections: its limits and TLS settings are the client's.
        limits = kwargs.pop("limits", None)
        verify = kwargs.pop("verify", True)
        transport = EgressTransport(policy, resolver=resolver, limits=limits, verify=verify)
        super().__init__(transport=transport, trust_env=False, **kwargs)
        self.policy = policy


def egress_client(
    policy: EgressPolicy, *, resolver: Resolver = system_resolver, **kwargs: Any
) -> EgressClient:
    """A client for destinations a tenant chose (e.g. an OpenAI SDK ``http_client=``)."""
    return EgressClient(policy, resolver=resolver, **kwargs)


def agent_http_client(agent: AgentConfig, settings: Settings, **kwargs: Any) -> EgressClient:
    """The client for a URL set in ``agent`` (its provider ``base_url``s): its policy."""
    return egress_client(EgressPolicy.for_agent(agent, settings), **kwargs)


# --- one bounded exchange -------------------------------------------------------------------


@dataclass(frozen=True)
class Fetched:
    url: httpx.URL  # after redirects
    status: int
    headers: httpx.Headers
    body: bytes
    truncated: bool  # the body went past max_bytes and was cut there


async def fetch(
    url: str,
    policy: EgressPolicy,
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    deadline: float = DEFAULT_DEADLINE_S,
    method: str = "GET",
    params: Mapping[str, Any] | None = None,
    json_body: Any = None,
    headers: Mapping[str, str] | None = None,
    truncate: bool = False,
    max_redirects: int = MAX_REDIRECTS,
    check_response: Callable[[httpx.Response], None] | None = None,
    client: EgressClient | None = None,
    resolver: Resolver = system_resolver,
) -> Fetched:
    """One request to a tenant-chosen URL under ``policy``, all of it within ``deadline``.

    Redirects are followed here (each hop checked; the caller's headers are dropped when the
    host changes). The body is read while counting: past ``max_bytes`` reading stops and it
    is cut there (``truncate``) or ``EgressTooLarge`` is raised. ``check_response`` may
    refuse a response from its status and headers before the body is read. Raises the
    ``Egress*`` errors, or what ``check_response`` raises.
    """
    current = check_url(url, policy)
    if params:
        current = current.copy_merge_params(dict(params))
    own = client is None
    used = client or egress_client(policy, resolver=resolver, timeout=deadline)
    # Uncompressed bodies: the cap then bounds memory (a small gzip chunk can inflate 1000x).
    base = {"User-Agent": "Parley/0.1", "Accept-Encoding": "identity"}
    sent: dict[str, str] = {**base, **(headers or {})}
    body = json_body
    try:
        async with asyncio.timeout(deadline):
            for _ in range(max_redirects + 1):
                request = used.build_request(
                    method, current, headers=sent, json=body, timeout=deadline
                )
                response = await used.send(request, stream=True, follow_redirects=False)
                try:
                    location = response.headers.get("location")
                    if response.is_redirect and location:
                        nxt = check_url(_join(current, location), policy)
                        if _becomes_get(response.status_code, method):
                            method, body = "GET", None
                        downgrade = current.scheme == "https" and nxt.scheme != "https"
                        if nxt.host != current.host or downgrade:
                            sent = dict(base)  # credentials stay with the host they were for
                        current = nxt
                        continue
                    if check_response is not None:
                        check_response(response)
                    data, cut = await _read_capped(response, max_bytes, truncate, current.host)
                    return Fetched(current, response.status_code, response.headers, data, cut)
                finally:
                    await response.aclose()
    except TimeoutError:
        raise EgressDeadline(
            f"{current.host} did not answer within {deadline:g} s", current.host
        ) from None
    except httpx.TimeoutException:
        raise EgressDeadline(f"{current.host} timed out", current.host) from None
    except httpx.HTTPError as exc:
        raise EgressUnreachable(
            f"{current.host} could not be reached ({type(exc).__name__})", current.host
        ) from None
    finally:
        if own:
            await used.aclose()
    raise EgressRedirects(
        f"{current.host} redirected more than {max_redirects} times", current.host
    )


def _join(url: httpx.URL, location: str) -> str | httpx.URL:
    try:
        return url.join(location)
    except httpx.InvalidURL:
        return location  # check_url reports it


def _becomes_get(status: int, method: str) -> bool:
    # What browsers (and httpx) do: 303 and 302 turn into GET; 301 only for POST.
    if method == "HEAD":
        return False
    return status in (302, 303) or (status == 301 and method == "POST")


async def _read_capped(
    response: httpx.Response, max_bytes: int, truncate: bool, host: str
) -> tuple[bytes, bool]:
    declared = response.headers.get("content-length", "")
    too_large = EgressTooLarge(f"the response from {host} is larger than {max_bytes} bytes", host)
    if not truncate and declared.isdigit() and int(declared) > max_bytes:
        raise too_large
    body = bytearray()
    async for chunk in response.aiter_bytes():
        room = max_bytes - len(body)
        if len(chunk) > room:
            if not truncate:
                raise too_large
            body += chunk[:room]
            return bytes(body), True
        body += chunk
    return bytes(body), False
