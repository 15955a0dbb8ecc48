"""fetch_url against a local HTTP server on 127.0.0.1, then extraction of what it fetched."""

from __future__ import annotations

import pytest

from pipelines.knowledge import (
    DocumentTooLarge,
    FetchError,
    UnsupportedContentType,
    extract,
    fetch_url,
)
from tests.knowledge.conftest import BIG
from tests.knowledge.test_extract import BOILERPLATE


async def test_fetch_html_page_and_extract_main_text(web_server: str) -> None:
    page = await fetch_url(f"{web_server}/hours.html", allow_private=True)
    assert page.content_type.startswith("text/html") and page.filename == "hours.html"
    doc = extract(page.data, content_type=page.content_type, filename=page.filename)
    assert doc.title == "Opening hours and how to find us"
    assert "free parking spaces behind the building" in doc.text
    for junk in BOILERPLATE:
        assert junk not in doc.text


async def test_redirect_is_followed(web_server: str) -> None:
    page = await fetch_url(f"{web_server}/redirect", allow_private=True)
    assert page.url.endswith("/hours.html")


async def test_redirect_loop_is_cut(web_server: str) -> None:
    with pytest.raises(FetchError, match="redirected more than 3 times"):
        await fetch_url(f"{web_server}/loop", max_redirects=3, allow_private=True)


async def test_wrong_content_type_is_rejected(web_server: str) -> None:
    with pytest.raises(UnsupportedContentType, match="'image/png' — allowed: text/plain"):
        await fetch_url(f"{web_server}/logo.png", allow_private=True)


async def test_generic_type_falls_back_to_file_name(web_server: str) -> None:
    page = await fetch_url(f"{web_server}/notes.md", allow_private=True)
    doc = extract(page.data, content_type=page.content_type, filename=page.filename)
    assert doc.text == "# Notes\n\nHello."


async def test_declared_size_over_limit_is_rejected(web_server: str) -> None:
    with pytest.raises(DocumentTooLarge, match="the page is 128 KB, the limit is 64 KB"):
        await fetch_url(f"{web_server}/big.txt", max_bytes=BIG, allow_private=True)


async def test_size_limit_enforced_while_streaming(web_server: str) -> None:
    with pytest.raises(DocumentTooLarge, match="larger than the limit of 64 KB"):
        await fetch_url(f"{web_server}/streamed-big", max_bytes=BIG, allow_private=True)


async def test_http_error_status(web_server: str) -> None:
    with pytest.raises(FetchError, match="HTTP 404"):
        await fetch_url(f"{web_server}/missing", allow_private=True)


async def test_total_timeout(web_server: str) -> None:
    with pytest.raises(FetchError, match="took longer than 0.5 s"):
        await fetch_url(f"{web_server}/slow", timeout=0.5, allow_private=True)


async def test_private_addresses_refused_by_default(web_server: str) -> None:
    with pytest.raises(FetchError, match="non-public address 127.0.0.1"):
        await fetch_url(f"{web_server}/hours.html")
    port = web_server.rsplit(":", 1)[1]
    with pytest.raises(FetchError, match="non-public address"):
        await fetch_url(f"http://localhost:{port}/hours.html")


@pytest.mark.parametrize("url", ["ftp://example.com/a.txt", "file:///etc/passwd", "no-scheme"])
async def test_only_http_urls(url: str) -> None:
    with pytest.raises(FetchError, match="only http:// and https://"):
        await fetch_url(url)
