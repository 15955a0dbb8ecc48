"""Fixtures of the knowledge tests: the fixture corpus, the bundled embedder, a local web server."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest
from numpy.typing import NDArray

from pipelines.knowledge import Chunk, LocalMiniLMEmbedder, chunk_text, extract

FIXTURES = Path(__file__).parent / "fixtures"
DOCS = FIXTURES / "docs"
QUESTIONS = FIXTURES / "questions.json"


@pytest.fixture(scope="session")
def embedder() -> LocalMiniLMEmbedder:
    emb = LocalMiniLMEmbedder()
    emb.warm_up()
    return emb


@dataclass
class Corpus:
    chunks: list[Chunk]
    vectors: NDArray[np.float32]


@pytest.fixture(scope="session")
def corpus(embedder: LocalMiniLMEmbedder) -> Corpus:
    """Every fixture document extracted, chunked and embedded (what ingestion will do)."""
    chunks: list[Chunk] = []
    for path in sorted(DOCS.iterdir()):
        doc = extract(path.read_bytes(), filename=path.name)
        for c in chunk_text(doc.text, title=doc.title, metadata={"source": path.name}):
            chunks.append(Chunk(len(chunks), c.content, c.metadata))
    return Corpus(chunks, embedder.embed([c.content for c in chunks]))


@pytest.fixture(scope="session")
def questions() -> list[dict[str, str]]:
    data: list[dict[str, str]] = json.loads(QUESTIONS.read_text())
    return data


# --- a local web server (127.0.0.1 only) for fetch_url -------------------------------------

BIG = 64 * 1024  # tests use a small max_bytes; pages bigger than this are "too large"


class _Handler(BaseHTTPRequestHandler):
    routes: ClassVar[dict[str, tuple[int, dict[str, str], bytes]]] = {}

    def log_message(self, format: str, *args: Any) -> None:  # keep test output clean
        pass

    def do_GET(self) -> None:
        if self.path == "/slow":
            time.sleep(3)
        if self.path == "/streamed-big":
            # No Content-Length: the limit must be enforced while reading the body.
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.end_headers()
            for _ in range(BIG // 1024 * 2):
                self.wfile.write(b"x" * 1024)
            return
        status, headers, body = self.routes.get(self.path, (404, {}, b"not found"))
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # clients hanging up on purpose (size limit, timeout) are not errors here


@pytest.fixture(scope="session")
def web_server() -> Iterator[str]:
    html = (DOCS / "dental_hours_location.html").read_bytes()
    _Handler.routes = {
        "/hours.html": (200, {"Content-Type": "text/html; charset=utf-8"}, html),
        "/redirect": (302, {"Location": "/hours.html"}, b""),
        "/loop": (302, {"Location": "/loop"}, b""),
        "/logo.png": (200, {"Content-Type": "image/png"}, b"\x89PNG\r\n\x1a\n" + b"0" * 100),
        "/big.txt": (200, {"Content-Type": "text/plain"}, b"y" * (BIG * 2)),
        "/notes.md": (200, {"Content-Type": "application/octet-stream"}, b"# Notes\n\nHello."),
        "/slow": (200, {"Content-Type": "text/plain"}, b"late"),
    }
    server = _QuietServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
