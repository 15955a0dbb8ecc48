"""pgvector: the HNSW cosine index exists, is used, and finds the true nearest neighbours."""

from __future__ import annotations

import asyncpg
import numpy as np
from pgvector import Vector

from parley.db.pool import as_user
from tests.db.conftest import Org, insert

N = 300


async def _fill(conn: asyncpg.Connection, org: Org) -> tuple[np.ndarray, list[object]]:
    rng = np.random.default_rng(42)
    vectors = rng.standard_normal((N, 384)).astype(np.float32)
    kb, doc = org.rows["knowledge_bases"], org.rows["documents"]
    await conn.executemany(
        "insert into public.chunks (org_id, knowledge_base_id, document_id, ordinal, content,"
        " embedding) values ($1, $2, $3, $4, $5, $6)",
        [(org.id, kb, doc, 1000 + i, f"chunk {i}", v) for i, v in enumerate(vectors)],
    )
    rows = await conn.fetch(
        "select id from public.chunks where ordinal >= 1000 order by ordinal", timeout=10
    )
    return vectors, [r["id"] for r in rows]


def _true_top5(vectors: np.ndarray, query: np.ndarray) -> list[int]:
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    similarity = unit @ (query / np.linalg.norm(query))
    return [int(i) for i in np.argsort(-similarity)[:5]]


async def test_hnsw_index_exists(conn: asyncpg.Connection) -> None:
    indexdef = await conn.fetchval(
        "select indexdef from pg_indexes where schemaname = 'public'"
        " and indexname = 'chunks_embedding_idx'"
    )
    assert indexdef is not None
    assert "USING hnsw" in indexdef
    assert "vector_cosine_ops" in indexdef


async def test_nearest_neighbours_use_the_index(
    conn: asyncpg.Connection, world: dict[str, Org]
) -> None:
    vectors, ids = await _fill(conn, world["A"])
    await conn.execute("analyze public.chunks")
    query = np.random.default_rng(7).standard_normal(384).astype(np.float32)
    sql = "select id from public.chunks order by embedding <=> $1 limit 5"
    async with conn.transaction():
        await conn.execute("set local enable_seqscan = off")
        await conn.execute("set local hnsw.ef_search = 100")
        plan = "\n".join(r[0] for r in await conn.fetch(f"explain {sql}", query))
        assert "chunks_embedding_idx" in plan, plan
        found = [r["id"] for r in await conn.fetch(sql, query)]
    # The two rows of the world (one per org) are random too; compare against all rows.
    world_rows = await conn.fetch(
        "select id, embedding from public.chunks where ordinal < 1000 order by ordinal"
    )
    all_ids = ids + [r["id"] for r in world_rows]
    all_vectors = np.vstack([vectors, *[r["embedding"].to_numpy() for r in world_rows]])
    assert found == [all_ids[i] for i in _true_top5(all_vectors, query)]


async def test_vectors_round_trip(conn: asyncpg.Connection, world: dict[str, Org]) -> None:
    row = await conn.fetchrow(
        "select embedding from public.chunks where id = $1", world["A"].rows["chunks"]
    )
    assert row is not None
    assert isinstance(row["embedding"], Vector)
    assert row["embedding"].to_numpy().shape == (384,)


async def test_match_chunks_respects_rls(conn: asyncpg.Connection, world: dict[str, Org]) -> None:
    a, b = world["A"], world["B"]
    vectors, ids = await _fill(conn, a)
    kb = a.rows["knowledge_bases"]
    query = vectors[17] + 0.01
    async with as_user(conn, a.owner):
        rows = await conn.fetch("select * from public.match_chunks($1, $2, 3)", query, kb)
        assert rows[0]["id"] == ids[17]
        assert rows[0]["similarity"] > 0.99
    async with as_user(conn, b.owner):
        assert await conn.fetch("select * from public.match_chunks($1, $2, 3)", query, kb) == []
    assert await insert(
        conn,
        "chunks",
        {
            "org_id": a.id,
            "knowledge_base_id": kb,
            "document_id": a.rows["documents"],
            "ordinal": 5,
            "content": "no embedding yet",
        },
    )
