"""Issue 10, finding 7: documents posted in a burst all reach ``ready``.

The document row is committed before its ingestion starts (the work never waits for a row the
request has not committed yet), so none is left ``pending`` and none is failed "because the
server stopped" while it runs."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx

from api.ingest import INTERRUPTED
from tests.api.conftest import Tenant, conn, db_url, migrated_template, pg_server, world
from tests.api.test_knowledge import app_client, new_base

__all__ = ["conn", "db_url", "migrated_template", "pg_server", "world"]


async def test_fifty_documents_posted_at_once_all_get_ready(
    db_url: str, world: dict[str, Tenant], tmp_path: Path
) -> None:
    h = world["A"].key_headers()
    async with app_client(db_url, tmp_path) as api:
        base = await new_base(api, h)

        async def post(i: int) -> httpx.Response:
            text = {"title": f"Note {i}", "text": f"Room {i} is on floor {i % 7}. " * 20}
            return await api.post(f"/v1/knowledge-bases/{base}/documents", json=text, headers=h)

        started = time.monotonic()
        posted = await asyncio.gather(*(post(i) for i in range(50)))
        assert [r.status_code for r in posted] == [202] * 50, [r.text for r in posted][:3]
        statuses: list[str] = []
        while time.monotonic() - started < 180:
            page = await api.get(
                f"/v1/knowledge-bases/{base}/documents", params={"limit": 100}, headers=h
            )
            items = page.json()["items"]
            statuses = [d["status"] for d in items]
            if all(s in ("ready", "failed") for s in statuses):
                break
            await asyncio.sleep(0.2)
        errors = [d["error"] for d in items if d["error"]]
    print(f"\n50 documents ready in {time.monotonic() - started:.1f} s")
    assert statuses == ["ready"] * 50, (statuses, errors[:3])
    assert not any(INTERRUPTED in e for e in errors)
