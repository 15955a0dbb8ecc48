"""The two workers ``bench/sessions.py`` compares, and what each needs per room.

* ``baseline``: ``bench/sessions_baseline.py``, a plain LiveKit Agents ``AgentSession`` worker;
  rooms are dispatched by agent name with no metadata.
* ``parley``: the real Parley worker (``bench/sessions_parley.py`` starts it with the simulated
  TTS registered); rooms need a ``public.calls`` row in Postgres and the job metadata
  ``{"call_id", "org_id"}``, exactly as the API's ``POST /v1/sessions/web`` makes them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from bench.sessions_stack import PYTHON, Stack
from tests.livekit.stack import NsProcess

INSTRUCTIONS = "You are the receptionist of a dental clinic. Answer briefly."
READY = "BENCH WORKER READY"


@dataclass
class Side:
    name: str
    stack: Stack
    fakes_url: str
    worker: NsProcess | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def agent_name(self) -> str:
        return f"bench-{self.name}"

    def livekit_env(self) -> dict[str, str]:
        assert self.stack.livekit is not None
        return self.stack.livekit.env()

    def start(self) -> NsProcess:
        raise NotImplementedError

    async def rooms(self, n: int, tag: str) -> list[dict[str, Any]]:
        return [
            {"room": f"{self.name}-{tag}-{i}", "agent_name": self.agent_name, "metadata": ""}
            for i in range(n)
        ]


class Baseline(Side):
    def start(self) -> NsProcess:
        env = {
            **self.livekit_env(),
            "BENCH_AGENT_NAME": self.agent_name,
            "BENCH_FAKES_URL": self.fakes_url,
            "BENCH_THREADS": "1" if self.extra.get("threads") else "",
        }
        argv = [PYTHON, "bench/sessions_baseline.py", "start"]
        self.worker = self.stack.spawn(f"{self.name}-worker", argv, env, ready_log=READY)
        return self.worker


class Parley(Side):
    """Needs ``extra['db_url']``; makes one organization and agent, then a call row per room."""

    def agent_config(self) -> dict[str, Any]:
        return {
            "name": "Bench receptionist",
            "system_prompt": INSTRUCTIONS,
            "greeting": None,
            "stt": {"provider": "groq"},
            "llm": {"provider": "openai", "base_url": f"{self.fakes_url}/v1", "model": "fake"},
            "tts": {
                "provider": "openai",
                "base_url": f"{self.fakes_url}/v1",
                "model": "tts-1",
                "voice": "alloy",
            },
        }

    def start(self) -> NsProcess:
        env = {
            **self.livekit_env(),
            "DATABASE_URL": self.extra["db_url"],
            "PARLEY_LIVEKIT_AGENT_NAME": self.agent_name,
            "PARLEY_DATA_DIR": str(self.stack.workdir / "parley-data"),
            "PARLEY_LOG_LEVEL": "WARNING",
            "GROQ_API_KEY": "fake",
            "GROQ_BASE_URL": f"{self.fakes_url}/openai/v1",
            "BENCH_FAKES_URL": self.fakes_url,
            # The simulated providers live in the test namespace: the operator allows them.
            "PARLEY_EGRESS_ALLOW_CIDRS": f"{urlparse(self.fakes_url).hostname}/32",
            **self.extra.get("env", {}),
        }
        argv = [PYTHON, "bench/sessions_parley.py", *self.extra.get("worker_args", [])]
        self.worker = self.stack.spawn(
            f"{self.name}-worker", argv, env, ready_log=READY, timeout=120
        )
        return self.worker

    async def prepare_db(self) -> None:
        """One organization and agent for this side (each side has its own agent name)."""
        from parley.db.pool import connect

        conn = await connect(self.extra["db_url"])
        try:
            org = await conn.fetchval(
                "insert into public.organizations (name) values ('bench') returning id"
            )
            agent = await conn.fetchval(
                "insert into public.agents (org_id, config) values ($1, $2::jsonb) returning id",
                org,
                json.dumps(self.agent_config()),
            )
        finally:
            await conn.close()
        self.extra.update(org_id=org, agent_id=agent)

    async def rooms(self, n: int, tag: str) -> list[dict[str, Any]]:
        from parley.db.pool import connect

        specs = await super().rooms(n, tag)
        conn = await connect(self.extra["db_url"])
        try:
            for spec in specs:
                call_id = uuid.uuid4()
                await conn.execute(
                    "insert into public.calls (id, org_id, agent_id, direction, room_name)"
                    " values ($1, $2, $3, 'web', $4)",
                    call_id,
                    self.extra["org_id"],
                    self.extra["agent_id"],
                    spec["room"],
                )
                spec["metadata"] = json.dumps(
                    {"call_id": str(call_id), "org_id": str(self.extra["org_id"])}
                )
        finally:
            await conn.close()
        return specs

    async def pipeline_latencies(self, rooms: list[str]) -> dict[str, float]:
        """p50 of the latencies Parley's pipeline wrote to ``public.call_turns`` for these rooms
        (its own, VAD-based figures: they start when the VAD decides speech ended)."""
        from parley.db.pool import connect

        conn = await connect(self.extra["db_url"])
        try:
            row = await conn.fetchrow(
                "select count(*) as turns,"
                " percentile_cont(0.5) within group (order by t.voice_to_voice_ms) as v2v,"
                " percentile_cont(0.5) within group (order by t.stt_final_ms) as stt,"
                " percentile_cont(0.5) within group (order by t.llm_first_token_ms) as llm,"
                " percentile_cont(0.5) within group (order by t.tts_first_audio_ms) as tts"
                " from public.call_turns t join public.calls c on c.id = t.call_id"
                " where c.room_name = any($1::text[]) and t.role = 'assistant'",
                rooms,
            )
        finally:
            await conn.close()
        return {k: float(v) for k, v in dict(row).items() if v is not None}


async def start_postgres(workdir: Path) -> tuple[str, int | None]:
    """Embedded Postgres (migrated) for the Parley worker; returns its URL and postmaster pid."""
    from parley.db.embedded import ensure_embedded
    from parley.db.migrate import migrate

    pgdata = workdir / "pg"
    url = await ensure_embedded(pgdata)
    await migrate(url)
    pid_file = next(pgdata.rglob("postmaster.pid"), None)
    pid = int(pid_file.read_text().split()[0]) if pid_file else None
    return url, pid


def stop_postgres(workdir: Path) -> None:
    from parley.db.embedded import stop_embedded

    stop_embedded(workdir / "pg")


def delete_rooms(stack: Stack, names: list[str]) -> None:
    """Ends the sessions: every participant is removed, so both workers' jobs finish."""
    from livekit import api

    lk_stack = stack.livekit
    assert lk_stack is not None

    async def delete() -> None:
        async with api.LiveKitAPI(lk_stack.http_url, lk_stack.api_key, lk_stack.api_secret) as lk:
            for name in names:
                with contextlib.suppress(Exception):  # already gone
                    await lk.room.delete_room(api.DeleteRoomRequest(room=name))

    stack.call(asyncio.run, delete())


__all__ = ["Baseline", "Parley", "Side", "delete_rooms", "start_postgres"]
