"""Knowledge API: bases CRUD, background ingestion of uploads / URLs / text with status and
progress, limits in the one error shape, search, tenancy, crash recovery, and recall@5 of the
labelled questions through the real API, pgvector and the bundled embedder."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from numpy.typing import NDArray

from api.app import create_app
from api.ingest import INTERRUPTED, KnowledgeSettings
from api.settings import ApiSettings
from parley.db import connect
from parley.db.settings import DatabaseSettings
from parley.jobs import JobSettings
from parley.settings import Settings
from pipelines.knowledge import EmbeddingSettings, LocalMiniLMEmbedder, OpenAIEmbedder
from tests.api.conftest import JWT_SECRET, Tenant
from tests.knowledge.conftest import DOCS, QUESTIONS, web_server

__all__ = ["web_server"]  # the local page server (127.0.0.1) of the knowledge tests

TYPES = dict(pdf="application/pdf", md="text/markdown", txt="text/plain", html="text/html")


@pytest.fixture(autouse=True)
def _knowledge_env(monkeypatch: pytest.MonkeyPatch) -> None:
    # Autouse fixtures run before `api` builds the app: its ingestion reads these.
    monkeypatch.setenv("PARLEY_KNOWLEDGE_ALLOW_PRIVATE_URLS", "true")  # pages on 127.0.0.1
    monkeypatch.setenv("PARLEY_KNOWLEDGE_MAX_UPLOAD_BYTES", "100000")
    for name in ("BASE_URL", "MODEL", "API_KEY"):
        monkeypatch.delenv(f"PARLEY_EMBEDDINGS_{name}", raising=False)


@asynccontextmanager
async def app_client(
    db_url: str,
    tmp_path: Path,
    *,
    settings: KnowledgeSettings | None = None,
    embedder: Any = None,
    jobs: JobSettings | None = None,
) -> AsyncIterator[httpx.AsyncClient]:
    """Like the `api` fixture, with knowledge / job settings and embedder set before start-up."""
    app = create_app(
        settings=Settings(data_dir=tmp_path, openai_api_key="test-key"),
        api_settings=ApiSettings(supabase_jwt_secret=JWT_SECRET, rate_burst=10_000),
        db_settings=DatabaseSettings(url=db_url),
    )
    app.state.knowledge_settings = settings or KnowledgeSettings(allow_private_urls=True)
    if embedder is not None:
        app.state.knowledge_embedder = embedder
    if jobs is not None:
        app.state.job_settings = jobs
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
            yield client


async def new_base(api: httpx.AsyncClient, h: dict[str, str], name: str = "Clinic") -> str:
    r = await api.post("/v1/knowledge-bases", json={"name": name}, headers=h)
    assert r.status_code == 201, r.text
    base_id: str = r.json()["id"]
    return base_id


def file_part(path: Path) -> dict[str, tuple[str, bytes, str]]:
    return {"file": (path.name, path.read_bytes(), TYPES[path.suffix[1:]])}


async def upload(api: httpx.AsyncClient, h: dict[str, str], base: str, path: Path) -> Any:
    files = file_part(path)
    r = await api.post(f"/v1/knowledge-bases/{base}/documents", files=files, headers=h)
    assert r.status_code == 202, r.text
    assert r.json()["status"] == "pending"
    return r.json()


async def wait_done(
    api: httpx.AsyncClient, h: dict[str, str], base: str, doc: str, within: float = 120
) -> Any:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        r = await api.get(f"/v1/knowledge-bases/{base}/documents/{doc}", headers=h)
        assert r.status_code == 200, r.text
        if r.json()["status"] in ("ready", "failed"):
            return r.json()
        await asyncio.sleep(0.05)
    raise AssertionError(f"document {doc} still not done after {within} s")


async def test_base_crud_and_pagination(api: httpx.AsyncClient, world: dict[str, Tenant]) -> None:
    h = world["A"].key_headers()
    made = [await new_base(api, h, f"KB {i}") for i in range(3)]
    seen, cursor = [], None
    while True:
        params: dict[str, Any] = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = (await api.get("/v1/knowledge-bases", params=params, headers=h)).json()
        seen += [x["id"] for x in page["items"]]
        if not (cursor := page["next_cursor"]):
            break
    assert len(seen) == len(set(seen)) == 4 and set(made) <= set(seen)  # + the world's base
    got = (await api.get(f"/v1/knowledge-bases/{made[0]}", headers=world["A"].jwt_headers())).json()
    assert got["embedding_model"] == "all-MiniLM-L6-v2" and got["document_count"] == 0
    patched = await api.patch(
        f"/v1/knowledge-bases/{made[0]}", json={"description": "FAQ"}, headers=h
    )
    assert patched.json()["description"] == "FAQ" and patched.json()["name"] == "KB 0"
    assert (await api.delete(f"/v1/knowledge-bases/{made[0]}", headers=h)).status_code == 204
    gone = await api.get(f"/v1/knowledge-bases/{made[0]}", headers=h)
    assert gone.status_code == 404 and gone.json()["error"]["code"] == "not_found"


async def test_ingest_files_url_and_text(
    api: httpx.AsyncClient, world: dict[str, Tenant], web_server: str
) -> None:
    h = world["A"].key_headers()
    base = await new_base(api, h)
    docs = [
        await upload(api, h, base, DOCS / name)
        for name in ("dental_insurance_payment.pdf", "dental_services.md", "garage_services.txt")
    ]
    r = await api.post(
        f"/v1/knowledge-bases/{base}/documents", json={"url": f"{web_server}/hours.html"}, headers=h
    )
    assert r.status_code == 202 and r.json()["source_type"] == "url", r.text
    docs.append(r.json())
    text = {"title": "Parking", "text": "The clinic's parking code is 4729. Spaces are free."}
    r = await api.post(f"/v1/knowledge-bases/{base}/documents", json=text, headers=h)
    assert r.status_code == 202 and r.json()["progress"]["stage"] == "queued"
    docs.append(r.json())
    done = [await wait_done(api, h, base, d["id"]) for d in docs]
    assert [d["status"] for d in done] == ["ready"] * 5, [d["error"] for d in done]
    for d in done:
        assert d["chunk_count"] > 0 and d["error"] is None
        p = d["progress"]
        assert p["stage"] == "done" and p["chunks_done"] == p["chunks_total"] == d["chunk_count"]
    mime = [d["mime_type"].split("/")[1] for d in done]
    assert mime == ["pdf", "markdown", "plain", "html", "plain"]
    assert done[0]["metadata"]["pages"] >= 1 and done[0]["source"] == docs[0]["source"]
    assert "Opening hours" in done[3]["title"] and done[4]["title"] == "Parking"
    listed = await api.get(f"/v1/knowledge-bases/{base}/documents", params={"limit": 3}, headers=h)
    assert len(listed.json()["items"]) == 3 and listed.json()["next_cursor"]
    ready = await api.get(
        f"/v1/knowledge-bases/{base}/documents", params={"status": "ready"}, headers=h
    )
    assert len(ready.json()["items"]) == 5
    hits = await api.post(
        f"/v1/knowledge-bases/{base}/search",
        json={"query": "What is the code for the car park?", "top_k": 3},
        headers=world["A"].jwt_headers(),
    )
    assert hits.status_code == 200, hits.text
    top = hits.json()["items"][0]
    assert top["document_id"] == docs[4]["id"] and "4729" in top["content"]
    assert top["document_title"] == "Parking" and 0 < top["score"] <= 1
    # Deleting a document removes its chunks from search.
    gone = await api.delete(f"/v1/knowledge-bases/{base}/documents/{docs[4]['id']}", headers=h)
    assert gone.status_code == 204
    hits = await api.post(
        f"/v1/knowledge-bases/{base}/search", json={"query": "parking code"}, headers=h
    )
    assert all(x["document_id"] != docs[4]["id"] for x in hits.json()["items"])


async def test_limits_and_failures(
    api: httpx.AsyncClient, world: dict[str, Tenant], web_server: str
) -> None:
    h = world["A"].key_headers()
    base = await new_base(api, h)
    url = f"/v1/knowledge-bases/{base}/documents"
    png = {"file": ("logo.png", b"\x89PNG\r\n\x1a\n" + b"0" * 100, "image/png")}
    r = await api.post(url, files=png, headers=h)
    assert r.status_code == 415 and r.json()["error"]["code"] == "unsupported_media_type"
    assert "allowed" in r.json()["error"]["message"]
    big = {"file": ("big.txt", b"word " * 30_000, "text/plain")}  # 150 KB > the 100 KB limit
    r = await api.post(url, files=big, headers=h)
    assert r.status_code == 413 and r.json()["error"]["code"] == "payload_too_large"
    r = await api.post(url, content=b"hello", headers={**h, "content-type": "text/plain"})
    assert r.status_code == 415
    r = await api.post(url, json={"text": ""}, headers=h)
    assert r.status_code == 422 and r.json()["error"]["details"][0]["field"] == "body.text"
    r = await api.post(url, json={"url": "ftp://example.com/x"}, headers=h)
    assert r.status_code == 422
    # Problems only found while ingesting: the document fails with a readable error.
    bad = [
        (await api.post(url, json={"url": f"{web_server}/logo.png"}, headers=h)).json(),
        (await api.post(url, json={"url": f"{web_server}/missing"}, headers=h)).json(),
    ]
    done = [await wait_done(api, h, base, d["id"]) for d in bad]
    assert [d["status"] for d in done] == ["failed", "failed"]
    assert "unsupported document type" in done[0]["error"]
    assert "HTTP 404" in done[1]["error"] and done[1]["chunk_count"] == 0


async def test_private_urls_refused_by_default(
    db_url: str,
    world: dict[str, Tenant],
    web_server: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PARLEY_EGRESS_ALLOW_CIDRS", "")  # the operator allows no internal range
    async with app_client(
        db_url, tmp_path, settings=KnowledgeSettings(allow_private_urls=False)
    ) as api:
        h = world["A"].key_headers()
        base = await new_base(api, h)
        r = await api.post(
            f"/v1/knowledge-bases/{base}/documents",
            json={"url": f"{web_server}/hours.html"},
            headers=h,
        )
        done = await wait_done(api, h, base, r.json()["id"])
        assert done["status"] == "failed" and "non-public address" in done["error"]


async def test_operator_allowed_range_reaches_knowledge_urls(
    db_url: str,
    world: dict[str, Tenant],
    web_server: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The one egress policy: the operator's allowed ranges apply to knowledge URLs too.
    monkeypatch.setenv("PARLEY_EGRESS_ALLOW_CIDRS", "127.0.0.1/32")
    async with app_client(
        db_url, tmp_path, settings=KnowledgeSettings(allow_private_urls=False)
    ) as api:
        h = world["A"].key_headers()
        base = await new_base(api, h)
        r = await api.post(
            f"/v1/knowledge-bases/{base}/documents",
            json={"url": f"{web_server}/hours.html"},
            headers=h,
        )
        done = await wait_done(api, h, base, r.json()["id"])
        assert done["status"] == "ready", done["error"]


async def test_other_org_is_404(api: httpx.AsyncClient, world: dict[str, Tenant]) -> None:
    a, b = world["A"], world["B"]
    b_base, b_doc = b.org.rows["knowledge_bases"], b.org.rows["documents"]
    for h in (a.key_headers(), a.jwt_headers()):
        kb = f"/v1/knowledge-bases/{b_base}"
        calls = [
            await api.get(kb, headers=h),
            await api.patch(kb, json={"name": "mine"}, headers=h),
            await api.get(f"{kb}/documents", headers=h),
            await api.post(f"{kb}/documents", json={"text": "x"}, headers=h),
            await api.get(f"{kb}/documents/{b_doc}", headers=h),
            await api.delete(f"{kb}/documents/{b_doc}", headers=h),
            await api.post(f"{kb}/search", json={"query": "chunk"}, headers=h),
            await api.delete(kb, headers=h),
        ]
        assert [c.status_code for c in calls] == [404] * len(calls), [c.text for c in calls]
        # A's own base id with B's document id is not a way in either.
        own = f"/v1/knowledge-bases/{a.org.rows['knowledge_bases']}/documents/{b_doc}"
        assert (await api.get(own, headers=h)).status_code == 404
        ids = {x["id"] for x in (await api.get("/v1/knowledge-bases", headers=h)).json()["items"]}
        assert ids == {str(a.org.rows["knowledge_bases"])}
    assert (
        await api.get(f"/v1/knowledge-bases/{b_base}", headers=b.jwt_headers())
    ).status_code == 200


class SlowEmbedder:
    """The bundled model, slowed down per batch (to watch progress), optionally failing."""

    def __init__(self, delay: float, fail_on_batch: int | None = None) -> None:
        self.inner = LocalMiniLMEmbedder()
        self.dim, self.name = self.inner.dim, self.inner.name
        self.delay, self.fail_on_batch, self.batches = delay, fail_on_batch, 0

    def embed(self, texts: Sequence[str]) -> NDArray[np.float32]:
        if len(texts) > 1:  # queries (one text) are not ingestion batches
            self.batches += 1
            time.sleep(self.delay)
            if self.batches == self.fail_on_batch:
                raise RuntimeError("embedding server exploded")
        return self.inner.embed(texts)


async def test_progress_failure_and_cancel(
    db_url: str, world: dict[str, Tenant], tmp_path: Path
) -> None:
    settings = KnowledgeSettings(embed_batch=2, concurrency=1)
    embedder = SlowEmbedder(0.3, fail_on_batch=4)
    text = (DOCS / "dental_services.md").read_text() * 3  # about a dozen chunks
    async with app_client(db_url, tmp_path, settings=settings, embedder=embedder) as api:
        h = world["A"].key_headers()
        base = await new_base(api, h)
        url = f"/v1/knowledge-bases/{base}/documents"
        first = (await api.post(url, json={"title": "A", "text": text}, headers=h)).json()
        second = (await api.post(url, json={"title": "B", "text": text}, headers=h)).json()
        seen: list[tuple[str, int, str]] = []  # (first's status, its chunks_done, second's)
        while True:
            d = (await api.get(f"{url}/{first['id']}", headers=h)).json()
            other = (await api.get(f"{url}/{second['id']}", headers=h)).json()["status"]
            seen.append((d["status"], d["progress"]["chunks_done"] if d["progress"] else -1, other))
            if d["status"] in ("ready", "failed"):
                break
            await asyncio.sleep(0.05)
        # Progress moves batch by batch; one document at a time: the second waits in `pending`.
        assert ("processing", 2, "pending") in seen and ("processing", 4, "pending") in seen, seen
        assert d["status"] == "failed" and "RuntimeError" in d["error"] and d["progress"] is None
        conn = await connect(db_url)
        try:
            for _ in range(500):
                status = (await api.get(f"{url}/{second['id']}", headers=h)).json()["status"]
                if status == "processing":
                    break
                await asyncio.sleep(0.02)
            assert (await api.delete(f"{url}/{second['id']}", headers=h)).status_code == 204
            await asyncio.sleep(0.5)
            # Neither the failed nor the deleted document left chunks behind.
            assert not await conn.fetchval(
                "select count(*) from public.chunks where document_id = any($1::uuid[])",
                [first["id"], second["id"]],
            )
        finally:
            await conn.close()


async def test_crash_recovery_and_shutdown(
    db_url: str, world: dict[str, Tenant], web_server: str, tmp_path: Path
) -> None:
    org, base, h = (
        world["A"].org.id,
        world["A"].org.rows["knowledge_bases"],
        world["A"].key_headers(),
    )
    docs = f"/v1/knowledge-bases/{base}/documents"
    conn = await connect(db_url)
    try:  # Rows a process of the version before the job queue left behind an hour ago.
        stuck = {
            kind: await conn.fetchval(
                "insert into public.documents (org_id, knowledge_base_id, source_type, source, "
                "status, updated_at) values ($1, $2, $3, $4, $5, now() - interval '1 hour') "
                "returning id",
                *(org, base, kind, source, status),
            )
            for kind, source, status in (
                ("text", None, "processing"),
                ("file", "notes.pdf", "pending"),
                ("url", f"{web_server}/hours.html", "processing"),
            )
        }
    finally:
        await conn.close()
    # Their text and bytes are gone with that process: they fail, saying so; the URL is fetched.
    # A graceful shutdown in the middle of work hands the document back to the queue.
    quick_stop = JobSettings(stop_grace_secs=0.2)
    async with app_client(db_url, tmp_path, embedder=SlowEmbedder(5.0), jobs=quick_stop) as api:
        text_doc = await wait_done(api, h, str(base), str(stuck["text"]))
        assert text_doc["status"] == "failed" and text_doc["error"] == INTERRUPTED
        assert (await wait_done(api, h, str(base), str(stuck["file"])))["error"] == INTERRUPTED
        slow = (await api.post(docs, json={"text": "Hi. " * 400}, headers=h)).json()
        for _ in range(400):
            status = (await api.get(f"{docs}/{slow['id']}", headers=h)).json()["status"]
            if status == "processing":
                break
            await asyncio.sleep(0.05)
        assert status == "processing"  # stopping now interrupts it
    async with app_client(db_url, tmp_path) as api:
        again = await wait_done(api, h, str(base), slow["id"])
        assert again["status"] == "ready" and again["error"] is None, again
        assert "ingest_starts" not in again["metadata"]
        url_doc = await wait_done(api, h, str(base), str(stuck["url"]))
        assert url_doc["status"] == "ready"
        # The world's fresh `pending` document may still be on its way: left alone.
        fresh = f"{docs}/{world['A'].org.rows['documents']}"
        assert (await api.get(fresh, headers=h)).json()["status"] == "pending"


async def test_embedding_endpoint_dimension_is_checked(
    db_url: str, world: dict[str, Tenant], tmp_path: Path
) -> None:
    with pytest.raises(ValueError, match="384-dimensional"):
        EmbeddingSettings(base_url="http://127.0.0.1:9/v1", model="big", dimensions=768)

    def handler(request: httpx.Request) -> httpx.Response:
        n = len(json.loads(request.content)["input"])
        data = [{"index": i, "embedding": [0.1] * 768} for i in range(n)]
        return httpx.Response(200, json={"data": data})

    client = httpx.Client(transport=httpx.MockTransport(handler))
    embedder = OpenAIEmbedder("http://embed.test/v1", None, "big-model", client=client)
    async with app_client(db_url, tmp_path, embedder=embedder) as api:
        h = world["A"].key_headers()
        base = await new_base(api, h)
        r = await api.post(f"/v1/knowledge-bases/{base}/documents", json={"text": "Hi."}, headers=h)
        done = await wait_done(api, h, base, r.json()["id"])
        assert done["status"] == "failed" and "768-dimensional" in done["error"]
        r = await api.post(f"/v1/knowledge-bases/{base}/search", json={"query": "x"}, headers=h)
        assert r.status_code == 502 and "768-dimensional" in r.json()["error"]["message"]
        # A base filled by the bundled model cannot be searched with another model's vectors.
        world_base = world["A"].org.rows["knowledge_bases"]
        r = await api.post(
            f"/v1/knowledge-bases/{world_base}/search", json={"query": "x"}, headers=h
        )
        assert r.status_code == 409 and r.json()["error"]["code"] == "embedding_model_mismatch"


async def test_recall_at_5_through_the_api(
    api: httpx.AsyncClient, world: dict[str, Tenant], capsys: pytest.CaptureFixture[str]
) -> None:
    h = world["A"].key_headers()
    base = await new_base(api, h, "Everything")
    by_id = {}
    for path in sorted(DOCS.iterdir()):
        by_id[(await upload(api, h, base, path))["id"]] = path.name
    for doc_id in by_id:
        assert (await wait_done(api, h, base, doc_id))["status"] == "ready"
    questions = json.loads(QUESTIONS.read_text())
    assert len(questions) >= 20
    hits, misses = 0, []
    for q in questions:
        r = await api.post(
            f"/v1/knowledge-bases/{base}/search",
            json={"query": q["question"], "top_k": 5},
            headers=h,
        )
        found = [by_id[x["document_id"]] for x in r.json()["items"]]
        if q["document"] in found:
            hits += 1
        else:
            misses.append((q["question"], q["document"], found))
    recall = hits / len(questions)
    with capsys.disabled():
        print(f"\n[knowledge API] recall@5 = {recall:.3f} over {len(questions)} questions")
    assert recall >= 0.9, misses
