"""Fetch a web page or document for ingestion: size, type, redirect and address limits."""

from __future__ import annotations

import asyncio
import ipaddress
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import TYPE_CHECKING

from pipelines.knowledge.errors import DocumentTooLarge, FetchError
from pipelines.knowledge.extract import (
    CONTENT_TYPES,
    MAX_DOCUMENT_BYTES,
    check_size,
    detect_kind,
    format_size,
)

if TYPE_CHECKING:
    import httpx

FETCH_TIMEOUT_S = 20.0
MAX_REDIRECTS = 5
USER_AGENT = "Parley-knowledge/0.1"


@dataclass(frozen=True)
class FetchedDocument:
    """The body of a fetched URL, to pass to ``extract``."""

    url: str  # after redirects
    content_type: str
    data: bytes
    filename: str | None


async def _check_host(url: httpx.URL, allow_private: bool) -> None:
    # Knowledge URLs come from users: refuse internal addresses (SSRF). The name is resolved
    # here and again by httpx, so a rebinding DNS server could still race this check.
    if url.scheme not in ("http", "https"):
        raise FetchError(f"cannot fetch {str(url)!r}: only http:// and https:// URLs are allowed")
    host = url.host
    if not host:
        raise FetchError(f"cannot fetch {str(url)!r}: the URL has no host name")
    if allow_private:
        return
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, url.port or 443)
    except OSError as exc:
        raise FetchError(f"cannot resolve host {host!r}: check the URL ({exc})") from exc
    for info in infos:
        address = ipaddress.ip_address(str(info[4][0]).split("%", 1)[0])
        if not address.is_global or address.is_multicast:
            raise FetchError(
                f"refusing to fetch {str(url)!r}: {host} resolves to the non-public address "
                f"{address}; only public web pages can be imported"
            )


async def fetch_url(
    url: str,
    max_bytes: int = MAX_DOCUMENT_BYTES,
    timeout: float = FETCH_TIMEOUT_S,  # noqa: ASYNC109 (a total deadline, applied below)
    *,
    max_redirects: int = MAX_REDIRECTS,
    allow_private: bool = False,
) -> FetchedDocument:
    """GET ``url`` for ingestion, with limits enforced while streaming.

    ``timeout`` bounds the whole fetch (all redirects and the body), not just each read.
    Redirects are followed by hand so every hop is checked; private, loopback and link-local
    addresses are refused unless ``allow_private`` (tests, self-hosted intranets).
    Raises ``FetchError``, ``UnsupportedContentType`` or ``DocumentTooLarge``.
    """
    import httpx

    headers = {"User-Agent": USER_AGENT, "Accept": ", ".join(CONTENT_TYPES)}
    try:
        # trust_env=False: no proxies or .netrc credentials applied to user-supplied URLs.
        client_cm = httpx.AsyncClient(timeout=timeout, trust_env=False)
        async with asyncio.timeout(timeout), client_cm as client:
            current = httpx.URL(url)
            for _ in range(max_redirects + 1):
                await _check_host(current, allow_private)
                request = client.build_request("GET", current, headers=headers)
                response = await client.send(request, stream=True)
                try:
                    if response.is_redirect and "location" in response.headers:
                        current = current.join(response.headers["location"])
                        continue
                    return await _read_body(response, current, max_bytes)
                finally:
                    await response.aclose()
    except (TimeoutError, httpx.TimeoutException) as exc:
        raise FetchError(
            f"fetching {url!r} took longer than {timeout:g} s: try again later or upload the "
            "file instead"
        ) from exc
    except httpx.HTTPError as exc:
        raise FetchError(
            f"cannot fetch {url!r} ({exc.__class__.__name__}: {exc}): check the URL"
        ) from exc
    except (httpx.InvalidURL, ValueError) as exc:
        raise FetchError(f"cannot fetch {url!r}: {exc}") from exc
    raise FetchError(f"{url!r} redirected more than {max_redirects} times: use the final address")


async def _read_body(response: httpx.Response, url: httpx.URL, max_bytes: int) -> FetchedDocument:
    if response.status_code != 200:
        raise FetchError(
            f"{str(url)!r} answered HTTP {response.status_code}: check that the page exists "
            "and is public"
        )
    ctype = response.headers.get("content-type", "")
    filename = PurePosixPath(url.path).name or None
    detect_kind(ctype, filename)  # raises UnsupportedContentType before the body is read
    declared = response.headers.get("content-length", "")
    if declared.isdigit():
        check_size(int(declared), max_bytes, "the page")
    body = bytearray()
    async for part in response.aiter_bytes():
        body += part
        if len(body) > max_bytes:
            raise DocumentTooLarge(
                f"the page is larger than the limit of {format_size(max_bytes)}: "
                "download it and upload a smaller part"
            )
    return FetchedDocument(str(url), ctype, bytes(body), filename)
