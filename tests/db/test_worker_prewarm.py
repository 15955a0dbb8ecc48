"""Idle worker processes prewarm the providers the stored agents use, not the defaults."""

from __future__ import annotations

import json

import asyncpg
import pytest

from agents.prewarm import MAX_CHOICES, agents_to_prewarm
from parley.settings import Settings
from tests.db.conftest import Org, build_world, insert


async def _agent(conn: asyncpg.Connection, org: Org, name: str, **config: object) -> None:
    doc = {"name": name, "system_prompt": "hi", **config}
    await insert(conn, "agents", {"org_id": org.id, "config": json.dumps(doc)})


def _install_voices(settings: Settings, *names: str) -> None:
    """Voices the operator installed (only catalogue names are prewarmed; never loaded here)."""
    voices = settings.data_dir / "voices"
    voices.mkdir(parents=True, exist_ok=True)
    for name in names:
        (voices / f"{name}.onnx").write_bytes(b"")
        (voices / f"{name}.onnx.json").write_text("{}")


async def test_one_stand_in_per_distinct_provider_setup(
    conn: asyncpg.Connection, db_url: str, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATABASE_URL", db_url)
    orgs = await build_world(conn)  # two orgs, one default agent each
    await conn.execute("delete from public.agents")
    cloud = {
        "stt": {"provider": "groq"},
        "llm": {"provider": "openai", "base_url": "http://llm.test/v1"},
        "tts": {"provider": "openai", "base_url": "http://tts.test/v1"},
    }
    for i in range(3):  # many agents, one setup
        await _agent(conn, orgs["A"], f"cloud {i}", **cloud)
    _install_voices(settings, "joe", *(f"voice-{i}" for i in range(MAX_CHOICES + 2)))
    await _agent(conn, orgs["B"], "local voice", tts={"provider": "local", "voice": "joe"})
    # Not installed (a path, stored before the API checked): never a prewarm choice.
    await _agent(conn, orgs["B"], "path", tts={"provider": "local", "voice": "../../etc/x"})
    await _agent(conn, orgs["B"], "smart", turns={"smart_turn": True})

    agents = agents_to_prewarm(settings)
    assert len(agents) == 3
    setups = {(a.stt.provider, a.llm.provider, a.tts.provider, a.turns.smart_turn) for a in agents}
    assert setups == {
        ("groq", "openai", "openai", False),
        ("auto", "auto", "local", False),
        ("auto", "auto", "auto", True),
    }
    assert {str(a.llm.base_url) for a in agents if a.llm.provider == "openai"} == {
        "http://llm.test/v1"
    }
    assert next(a for a in agents if a.tts.provider == "local").tts.voice == "joe"

    # Many setups: at most MAX_CHOICES are loaded per process.
    for i in range(MAX_CHOICES + 2):
        await _agent(conn, orgs["A"], f"v{i}", tts={"provider": "local", "voice": f"voice-{i}"})
    assert len(agents_to_prewarm(settings)) == MAX_CHOICES


async def test_no_agents_or_no_database_means_the_defaults(
    conn: asyncpg.Connection, db_url: str, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATABASE_URL", db_url)
    await conn.execute("delete from public.agents")
    [agent] = agents_to_prewarm(settings)
    assert agent.name == "prewarm" and agent.tts.provider == "auto"
    monkeypatch.setenv("DATABASE_URL", "postgresql://nobody@127.0.0.1:1/none")
    [agent] = agents_to_prewarm(settings)
    assert agent.tts.provider == "auto"
