"""Knowledge retrieval at scale: pgvector HNSW search latency and ingestion throughput.

In a throw-away embedded Postgres (pgserver, temp data dir, fsync off):
1. ``--chunks`` (100k) random-but-clustered 384-d unit vectors (the shape of real embeddings:
   topics with spread) are loaded with COPY into one knowledge base; the migration's HNSW
   index (cosine, m=16, ef_construction=64) is then built over them.
2. Top-5 search through the production query (``pipelines.knowledge.store.search_chunks``,
   org + base filter, document join) for ``--queries`` query vectors, per ``hnsw.ef_search``
   value: p50/p95 latency and recall@5 against exact (brute-force) search.
3. The same search including query embedding with the bundled MiniLM, through
   ``PgRetriever.search`` (what a call does per turn), on the labelled questions.
4. Ingestion throughput through the real path (``api.ingest.ingest_now``: extract → chunk →
   embed → COPY + status update) on the fixture corpus repeated ``--rounds`` times, with the
   100k-row index in place.

Run: .venv/bin/python bench/retrieval.py [--chunks 100000] [--queries 300] [--ef 40,64,100]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import asyncpg  # noqa: E402
import numpy as np  # noqa: E402
from numpy.typing import NDArray  # noqa: E402

from api.ingest import DocRef, KnowledgeSettings, Source, ingest_now  # noqa: E402
from parley.db import connect, create_pool, migrate, start_embedded, stop_embedded  # noqa: E402
from parley.db.testing import scratch_dir  # noqa: E402
from pipelines.knowledge import LocalMiniLMEmbedder, search_chunks  # noqa: E402
from pipelines.knowledge.retrieve import PgRetriever  # noqa: E402
from pipelines.knowledge.store import CHUNK_COLUMNS, DEFAULT_EF_SEARCH  # noqa: E402

DIM, K = 384, 5
DOCS = ROOT / "tests" / "knowledge" / "fixtures" / "docs"
QUESTIONS = ROOT / "tests" / "knowledge" / "fixtures" / "questions.json"
TYPES = {
    ".pdf": "application/pdf",
    ".md": "text/markdown",
    ".txt": "text/plain",
    ".html": "text/html",
}


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def unit(v: NDArray[np.float32]) -> NDArray[np.float32]:
    out: NDArray[np.float32] = (v / np.linalg.norm(v, axis=-1, keepdims=True)).astype(np.float32)
    return out


def clustered(n: int, clusters: int, spread: float, rng: np.random.Generator) -> Any:
    """Unit vectors around ``clusters`` random topic centres (cosine ~0.5-0.7 to the centre)."""
    centres = unit(rng.standard_normal((clusters, DIM)).astype(np.float32))
    labels = rng.integers(0, clusters, n)
    noise = rng.standard_normal((n, DIM)).astype(np.float32) * spread / np.sqrt(DIM)
    return unit(centres[labels] + noise), centres


async def tune(url: str) -> None:
    conn = await connect(url)
    try:
        for setting, value in (
            ("fsync", "off"),
            ("synchronous_commit", "off"),
            ("full_page_writes", "off"),
            ("maintenance_work_mem", "'512MB'"),
            ("max_parallel_maintenance_workers", "2"),
        ):
            await conn.execute(f"alter system set {setting} = {value}")
        await conn.execute("select pg_reload_conf()")
    finally:
        await conn.close()


async def load(conn: asyncpg.Connection, vectors: Any) -> tuple[uuid.UUID, uuid.UUID, float]:
    org = await conn.fetchval(
        "insert into public.organizations (name) values ('bench') returning id"
    )
    base = await conn.fetchval(
        "insert into public.knowledge_bases (org_id, name) values ($1, 'big') returning id", org
    )
    per_doc = 1000
    started = time.perf_counter()
    await conn.execute("drop index public.chunks_embedding_idx")
    for d in range(0, len(vectors), per_doc):
        doc = await conn.fetchval(
            "insert into public.documents (org_id, knowledge_base_id, source_type, title, status)"
            " values ($1, $2, 'text', $3, 'ready') returning id",
            org,
            base,
            f"Document {d // per_doc}",
        )
        rows = [
            (org, base, doc, i, f"chunk {d + i}", vectors[d + i], "{}")
            for i in range(min(per_doc, len(vectors) - d))
        ]
        await conn.copy_records_to_table(
            "chunks",
            schema_name="public",
            columns=list(CHUNK_COLUMNS),
            records=rows,
        )
    copied = time.perf_counter() - started
    print(f"COPY {len(vectors):,} chunks: {copied:.1f} s ({len(vectors) / copied:,.0f} rows/s)")
    started = time.perf_counter()
    # The migration's definition (m=16, ef_construction=64 are pgvector's defaults).
    await conn.execute(
        "create index chunks_embedding_idx on public.chunks "
        "using hnsw (embedding extensions.vector_cosine_ops)"
    )
    await conn.execute("analyze public.chunks")
    built = time.perf_counter() - started
    print(f"HNSW index build: {built:.1f} s")
    return org, base, copied + built


async def search_bench(
    pool: asyncpg.Pool, org: uuid.UUID, base: uuid.UUID, vectors: Any, queries: Any, efs: list[int]
) -> dict[int, tuple[float, float, float]]:
    exact = np.argsort(-(queries @ vectors.T), axis=1)[:, :K]
    truth = [{f"chunk {i}" for i in row} for row in exact]
    out = {}
    async with pool.acquire() as conn:
        plan = await conn.fetch(
            "explain select id from public.chunks where org_id = $1 and knowledge_base_id = "
            "any($2::uuid[]) and embedding is not null order by embedding <=> $3 limit 5",
            org,
            [base],
            queries[0],
        )
        uses = "hnsw" if any("chunks_embedding_idx" in r[0] for r in plan) else "NOT the index"
        print(f"query plan: {uses}")
        for ef in efs:
            for q in queries[:20]:  # warm the cache
                await search_chunks(conn, org, [base], q, K, ef_search=ef)
            times, hits = [], 0
            for q, want in zip(queries, truth, strict=True):
                t = time.perf_counter()
                found = await search_chunks(conn, org, [base], q, K, ef_search=ef)
                times.append((time.perf_counter() - t) * 1000)
                hits += len(want & {c.content for c in found})
            out[ef] = (pct(times, 50), pct(times, 95), hits / (K * len(queries)))
    return out


class TimedEmbedder(LocalMiniLMEmbedder):
    """Counts the seconds spent embedding (to split ingestion time)."""

    seconds = 0.0

    def embed(self, texts: Sequence[str]) -> Any:
        t = time.perf_counter()
        try:
            return super().embed(texts)
        finally:
            self.seconds += time.perf_counter() - t


async def embedded_search_bench(
    pool: asyncpg.Pool, org: uuid.UUID, base: uuid.UUID, n: int, ef: int | None
) -> tuple[float, float, float, float]:
    questions = [q["question"] for q in json.loads(QUESTIONS.read_text())]
    texts = [
        questions[i % len(questions)] + ("" if i < len(questions) else f" ({i})") for i in range(n)
    ]
    embedder = LocalMiniLMEmbedder()
    embedder.warm_up()
    retriever = PgRetriever(pool, org, [base], embedder, ef_search=ef)
    await retriever.search(texts[0], top_k=K, min_score=0)
    total, embed_only = [], []
    for text in texts:
        t = time.perf_counter()
        await asyncio.to_thread(embedder.embed, [text])
        embed_only.append((time.perf_counter() - t) * 1000)
        t = time.perf_counter()
        await retriever.search(text, top_k=K, min_score=0)
        total.append((time.perf_counter() - t) * 1000)
    return pct(total, 50), pct(total, 95), pct(embed_only, 50), pct(embed_only, 95)


async def ingest_bench(
    pool: asyncpg.Pool, org: uuid.UUID, rounds: int
) -> tuple[int, float, int, float]:
    files = sorted(p for p in DOCS.iterdir() if p.suffix in TYPES)
    sources = [
        Source("file", data=p.read_bytes(), filename=p.name, content_type=TYPES[p.suffix])
        for p in files
    ]
    embedder = TimedEmbedder()
    embedder.warm_up()
    settings = KnowledgeSettings()
    async with pool.acquire() as conn:
        base = await conn.fetchval(
            "insert into public.knowledge_bases (org_id, name) values ($1, 'corpus') returning id",
            org,
        )
    chunks, started = 0, time.perf_counter()
    for _ in range(rounds):
        for src in sources:
            async with pool.acquire() as conn:
                doc = await conn.fetchval(
                    "insert into public.documents (org_id, knowledge_base_id, source_type, status)"
                    " values ($1, $2, 'file', 'processing') returning id",
                    org,
                    base,
                )
            stats = await ingest_now(pool, embedder, DocRef(doc, org, base), src, settings)
            assert stats is not None
            chunks += stats.chunks
    return chunks, time.perf_counter() - started, len(sources) * rounds, embedder.seconds


async def main(args: argparse.Namespace) -> None:
    efs = [int(x) for x in args.ef.split(",")]
    print(
        f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} (other work skews numbers)"
    )
    rng = np.random.default_rng(7)
    vectors, centres = clustered(args.chunks, args.clusters, args.spread, rng)
    picks = rng.integers(0, len(centres), args.queries)
    noise = rng.standard_normal((args.queries, DIM)).astype(np.float32) * args.spread / np.sqrt(DIM)
    queries = unit(centres[picks] + noise)
    with scratch_dir("parley-bench-pg-") as folder:
        url = start_embedded(folder / "data")
        try:
            await tune(url)
            await migrate(url)
            pool = await create_pool(url, min_size=1, max_size=2)
            try:
                async with pool.acquire() as conn:
                    org, base, _ = await load(conn, vectors)
                print(
                    f"\nTop-{K} search over {args.chunks:,} chunks, {args.queries} queries "
                    "(no embedding):"
                )
                for ef, (p50, p95, recall) in (
                    await search_bench(pool, org, base, vectors, queries, efs)
                ).items():
                    print(
                        f"  ef_search={ef:<4} p50 {p50:6.2f} ms  p95 {p95:6.2f} ms  "
                        f"recall@{K} vs exact {recall:.3f}"
                    )
                for ef_or_none in (DEFAULT_EF_SEARCH, None):
                    p50, p95, e50, e95 = await embedded_search_bench(
                        pool, org, base, args.queries, ef_or_none
                    )
                    print(
                        f"\nWith MiniLM query embedding (PgRetriever.search, ef_search="
                        f"{ef_or_none or 'server default 40'}), {args.queries} queries:\n"
                        f"  total p50 {p50:.2f} ms  p95 {p95:.2f} ms   (embedding alone p50 "
                        f"{e50:.2f} ms  p95 {e95:.2f} ms)"
                    )
                chunks, secs, docs, embedding = await ingest_bench(pool, org, args.rounds)
                print(
                    f"\nIngestion (extract+chunk+embed+COPY, real path), {docs} documents: "
                    f"{chunks} chunks in {secs:.1f} s = {chunks / secs:.1f} chunks/s "
                    f"({docs / secs:.1f} docs/s); embedding took {embedding:.1f} s of it "
                    f"({chunks / embedding:.1f} chunks/s alone)"
                )
            finally:
                await pool.close()
        finally:
            stop_embedded(folder / "data")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--chunks", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--clusters", type=int, default=500)
    parser.add_argument("--spread", type=float, default=1.2, help="noise / centre norm ratio")
    parser.add_argument("--ef", default="40,64,100", help="hnsw.ef_search values to try")
    parser.add_argument("--rounds", type=int, default=5, help="times the corpus is ingested")
    asyncio.run(main(parser.parse_args()))
