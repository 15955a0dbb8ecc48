"""Fetch a web page or document for ingestion through the egress policy: type and size limits."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import PurePosixPath

import httpx

from parley.egress import (
    EgressBadURL,
    EgressDeadline,
    EgressError,
    EgressPolicy,
    EgressRedirects,
    EgressRefused,
    EgressTooLarge,
    fetch,
)
from pipelines.knowledge.errors import DocumentTooLarge, FetchError
from pipelines.knowledge.extract import (
    CONTENT_TYPES,
    MAX_DOCUMENT_BYTES,
    check_size,
    detect_kind,
    format_size,
)

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


async def fetch_url(
    url: str,
    max_bytes: int = MAX_DOCUMENT_BYTES,
    timeout: float = FETCH_TIMEOUT_S,  # noqa: ASYNC109 (a total deadline, applied by fetch)
    *,
    max_redirects: int = MAX_REDIRECTS,
    allow_private: bool = False,
    policy: EgressPolicy | None = None,
) -> FetchedDocument:
    """GET ``url`` for ingestion, with limits enforced while streaming.

    ``timeout`` bounds the whole fetch (all redirects and the body), not just each read.
    ``policy`` says which addresses may be reached (``EgressPolicy.from_settings`` honours
    the operator's allowed ranges); by default only public ones, any with ``allow_private``
    (tests, self-hosted intranets). Raises ``FetchError``, ``UnsupportedContentType`` or
    ``DocumentTooLarge``.
    """
    if policy is None:
        policy = EgressPolicy.unrestricted() if allow_private else EgressPolicy()
    headers = {"User-Agent": USER_AGENT, "Accept": ", ".join(CONTENT_TYPES)}
    try:
        got = await fetch(
            url,
            policy,
            max_bytes=max_bytes,
            deadline=timeout,
            headers=headers,
            max_redirects=max_redirects,
            check_response=lambda r: _check_response(r, max_bytes),
        )
    except EgressBadURL as err:
        raise FetchError(
            f"cannot fetch {url!r}: only http:// and https:// URLs with a host are allowed "
            f"({err.reason})"
        ) from None
    except EgressRefused as err:
        raise FetchError(f"refusing to fetch {url!r}: {_refusal(err)}") from None
    except EgressTooLarge:
        raise DocumentTooLarge(
            f"the page is larger than the limit of {format_size(max_bytes)}: "
            "download it and upload a smaller part"
        ) from None
    except EgressDeadline:
        raise FetchError(
            f"fetching {url!r} took longer than {timeout:g} s: try again later or upload the "
            "file instead"
        ) from None
    except EgressRedirects:
        raise FetchError(
            f"{url!r} redirected more than {max_redirects} times: use the final address"
        ) from None
    except EgressError as err:
        raise FetchError(f"cannot fetch {url!r} ({err}): check the URL") from None
    content_type = got.headers.get("content-type", "")
    return FetchedDocument(
        str(got.url), content_type, got.body, PurePosixPath(got.url.path).name or None
    )


def _refusal(err: EgressRefused) -> str:
    # Knowledge URLs are typed by the user who imports them: say what the address is.
    if err.address is None:
        where = f"{err.host} is a non-public address ({err.reason})"
    elif str(err.address) == err.host:
        where = f"{err.host} is the non-public address {err.address} ({err.reason})"
    else:
        where = f"{err.host} resolves to the non-public address {err.address} ({err.reason})"
    return f"{where}; only public web pages can be imported"


def _check_response(response: httpx.Response, max_bytes: int) -> None:
    """Before the body is read: the status, the type and the declared size."""
    if response.status_code != 200:
        raise FetchError(
            f"{str(response.url)!r} answered HTTP {response.status_code}: check that the page "
            "exists and is public"
        )
    filename = PurePosixPath(response.url.path).name or None
    detect_kind(response.headers.get("content-type", ""), filename)  # UnsupportedContentType
    declared = response.headers.get("content-length", "")
    if declared.isdigit():
        check_size(int(declared), max_bytes, "the page")
