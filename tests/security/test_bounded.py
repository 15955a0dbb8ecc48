"""Issue 10, finding 6: ``/chat`` holds no database connection while the LLM runs, and ends at
its deadline. 20 slow chats of one organization leave another organization's
``GET /v1/agents`` fast on a small pool; a chat whose LLM never answers ends on time."""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx

from api.app import create_app
from api.settings import ApiSettings
from parley.db.settings import DatabaseSettings
from parley.settings import Settings
from tests.api.conftest import JWT_SECRET, Tenant, conn, db_url, migrated_template, pg_server, world
from tests.fakes import FakeCloud, Script

__all__ = ["conn", "db_url", "migrated_template", "pg_server", "world"]


@asynccontextmanager
async def app_client(db_url: str, tmp_path: Path, **api: float) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(
        # The fake LLM listens on 127.0.0.1: allowed the way an operator allows an intranet.
        settings=Settings(  # type: ignore[call-arg]
            data_dir=tmp_path, egress_allow_cidrs=["127.0.0.0/8"]
        ),
        api_settings=ApiSettings(supabase_jwt_secret=JWT_SECRET, rate_burst=10_000, **api),
        # A small pool: a chat holding a connection through its LLM call would starve others.
        db_settings=DatabaseSettings(url=db_url, pool_min_size=1, pool_max_size=4),
    )
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://api", timeout=60
        ) as client:
            yield client


async def _agent(api: httpx.AsyncClient, h: dict[str, str], cloud: FakeCloud) -> str:
    llm = {"provider": "openai", "model": "m", "base_url": cloud.openai_base_url}
    cfg = {"name": "Slow", "system_prompt": "Answer.", "llm": llm}
    r = await api.post("/v1/agents", json=cfg, headers=h)
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


async def test_slow_chats_leave_other_orgs_fast(
    db_url: str, world: dict[str, Tenant], tmp_path: Path
) -> None:
    slow = Script(default="Finally.", first_token_delay_s=5.0)
    with FakeCloud(slow, api_key=None) as cloud:
        async with app_client(db_url, tmp_path) as api:
            a, b = world["A"].key_headers(), world["B"].key_headers()
            agent = await _agent(api, a, cloud)
            chats = [
                asyncio.create_task(
                    api.post(f"/v1/agents/{agent}/chat", json={"message": "hi"}, headers=a)
                )
                for _ in range(20)
            ]
            # Measured once every chat is waiting for its LLM (not while they are being built).
            for _ in range(200):
                if len(cloud.requests) >= 20:
                    break
                await asyncio.sleep(0.05)
            assert len(cloud.requests) == 20
            times = []
            for _ in range(20):
                t0 = time.perf_counter()
                r = await api.get("/v1/agents", headers=b)
                times.append((time.perf_counter() - t0) * 1000)
                assert r.status_code == 200
            assert not any(c.done() for c in chats)  # measured while all 20 were running
            done = await asyncio.gather(*chats)
    assert [r.status_code for r in done] == [200] * 20
    times.sort()
    p95 = times[int(0.95 * len(times)) - 1]
    p50 = statistics.median(times)
    print(f"\nGET /v1/agents during 20 slow chats: p50 {p50:.0f} ms, p95 {p95:.0f} ms")
    assert p95 < 200


async def test_chat_ends_at_its_deadline(
    db_url: str, world: dict[str, Tenant], tmp_path: Path
) -> None:
    never = Script(default="Too late.", first_token_delay_s=30.0)
    with FakeCloud(never, api_key=None) as cloud:
        async with app_client(db_url, tmp_path, chat_timeout_secs=2.0) as api:
            a = world["A"].key_headers()
            agent = await _agent(api, a, cloud)
            t0 = time.monotonic()
            r = await api.post(f"/v1/agents/{agent}/chat", json={"message": "hi"}, headers=a)
            elapsed = time.monotonic() - t0
    print(f"\na chat whose LLM never answers ended after {elapsed:.2f} s (deadline 2 s)")
    assert r.status_code == 504 and r.json()["error"]["code"] == "llm_timeout", r.text
    assert elapsed < 2.0 + 1.0, elapsed
