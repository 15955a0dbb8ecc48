"""Issue 10, finding 4: code and files are chosen by the operator, not tenants.

Attacks through the real API and Postgres: a config naming a module to import (``this:s``,
``os:system``, a canary module on ``sys.path`` that records its own import) or a model / voice
path or hub id is a 422, and a config stored before the check is refused by the runtime
(pipeline resolution, the local service builders, prewarming) before anything is imported or
opened. What the operator registered or installed still works.
"""

from __future__ import annotations

import json
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import httpx
import pytest

from agents.calls import CallRefused, CallStore
from agents.prewarm import agents_to_prewarm
from parley.config import AgentConfig
from parley.db.testing import db_pool
from parley.errors import ConfigError, ProviderUnavailable
from parley.settings import Settings
from pipelines import catalog, voice, voice_fillers
from pipelines.services.base import ProviderEntry
from pipelines.services.local import ENTRIES
from pipelines.services.local.models import piper_voice_path
from pipelines.services.local.tts import synthesize
from tests.api.conftest import Tenant, api, conn, db_url, migrated_template, pg_server, world
from tests.db.conftest import insert

__all__ = ["api", "conn", "db_pool", "db_url", "migrated_template", "pg_server", "world"]

BASE = {"name": "Attacker", "system_prompt": "hi"}


@dataclass
class Code:
    folder: Path
    operator: str  # registered as "ops_graph" (PARLEY_PIPELINES) and "pkg_graph" (entry point)
    canary: str  # registered by nobody

    def imported(self, module: str) -> bool:
        return module in sys.modules or (self.folder / f"{module}.imported").exists()


def _module(folder: Path, prefix: str) -> str:
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    marker = folder / f"{name}.imported"
    (folder / f"{name}.py").write_text(
        f"from pathlib import Path\nPath({str(marker)!r}).write_text('imported')\n"
        "from pipelines.voice import build\n"
    )
    return name


@pytest.fixture(autouse=True)
def code(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Code:
    """Set before the API starts: an operator's module registered both ways, and a canary."""
    folder = tmp_path / "code"
    folder.mkdir()
    monkeypatch.syspath_prepend(str(folder))
    operator, canary = _module(folder, "operator_graph"), _module(folder, "canary")
    dist = folder / "acme_graphs-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: acme-graphs\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(f"[parley.pipelines]\npkg_graph = {operator}:build\n")
    monkeypatch.setenv("PARLEY_PIPELINES", f"ops_graph={operator}:build")
    monkeypatch.delitem(sys.modules, "this", raising=False)
    return Code(folder, operator, canary)


def _settings(data_dir: Path) -> Settings:
    return Settings(data_dir=data_dir, openai_api_key="test-key")  # type: ignore[call-arg]


def _install_voice(voices: Path, name: str) -> None:
    """An operator's voice: the bundled one's files under another name."""
    real = piper_voice_path(None, voices)
    voices.mkdir(exist_ok=True)
    (voices / f"{name}.onnx").symlink_to(real)
    (voices / f"{name}.onnx.json").symlink_to(real.with_name(real.name + ".json"))


async def test_a_tenant_cannot_name_code_to_import(
    api: httpx.AsyncClient, world: dict[str, Tenant], code: Code
) -> None:
    h = world["A"].key_headers()
    made = await api.post("/v1/agents", json=BASE, headers=h)
    assert made.status_code == 201, made.text
    for pipeline in ("this:s", "os:system", f"{code.canary}:build", code.canary):
        cfg = {**BASE, "pipeline": pipeline}
        for r in (
            await api.post("/v1/agents", json=cfg, headers=h),
            await api.put(f"/v1/agents/{made.json()['id']}", json=cfg, headers=h),
        ):
            assert r.status_code == 422, r.text
            err = r.json()["error"]
            assert err["code"] == "invalid_config"
            assert f"pipeline: {pipeline!r} is not a registered pipeline" in err["message"]
            assert "voice, voice_fillers" in err["message"] and "ops_graph" in err["message"]
    assert not code.imported(code.canary) and "this" not in sys.modules
    listed = (await api.get("/v1/agents", headers=h)).json()["items"]
    assert {a["config"]["pipeline"] for a in listed} == {"voice"}  # nothing else was stored


async def test_operator_pipelines_are_accepted_and_resolve(
    api: httpx.AsyncClient, world: dict[str, Tenant], code: Code, tmp_path: Path
) -> None:
    h = world["A"].key_headers()
    stored: dict[str, AgentConfig] = {}
    for name in ("ops_graph", "pkg_graph", "voice_fillers"):
        r = await api.post("/v1/agents", json={**BASE, "pipeline": name}, headers=h)
        assert r.status_code == 201, r.text
        stored[name] = AgentConfig.model_validate(r.json()["config"])
    assert not code.imported(code.operator)  # storing a name imports nothing
    settings = _settings(tmp_path)
    assert catalog.graph(stored["ops_graph"], settings) is voice.build
    assert code.imported(code.operator)
    assert catalog.graph(stored["pkg_graph"], settings) is voice.build
    assert catalog.graph(stored["voice_fillers"], settings) is voice_fillers.build


async def test_a_stored_bad_pipeline_is_refused_by_the_runtime_before_import(
    world: dict[str, Tenant],
    conn: asyncpg.Connection,
    db_pool: asyncpg.Pool,
    code: Code,
    tmp_path: Path,
) -> None:
    org = world["A"].org
    # Written by an older version, before the API checked it.
    config = {**BASE, "pipeline": f"{code.canary}:build"}
    agent_id = await insert(conn, "agents", {"org_id": org.id, "config": json.dumps(config)})
    call_id = await insert(
        conn, "calls", {"org_id": org.id, "direction": "web", "agent_id": agent_id}
    )
    # The runtime's load refuses it and fails the call, before anything is imported...
    with pytest.raises(CallRefused, match="is not a registered pipeline"):
        await CallStore(db_pool, _settings(tmp_path)).load(call_id, org.id)
    status = await conn.fetchrow(
        "select status, end_reason from public.calls where id = $1", call_id
    )
    assert tuple(status) == ("failed", "config_refused")
    # ... and the graph lookup on its own refuses it as well.
    with pytest.raises(ConfigError, match="is not a registered pipeline"):
        catalog.graph(AgentConfig.model_validate(config), _settings(tmp_path))
    assert not code.imported(code.canary)


BAD_NAMES = [
    {"stt": {"model": "/etc/passwd"}},  # auto: no STT key, so local Whisper
    {"stt": {"provider": "local", "model": "openai/whisper-large-v3"}},  # a hub id
    {"llm": {"provider": "local", "model": "../../x.gguf"}},
    {"tts": {"voice": "../../../etc/passwd"}},
    {"tts": {"provider": "local", "voice": "../secret"}},  # <data_dir>/secret.onnx exists
]


async def test_models_and_voices_are_installed_names(
    api: httpx.AsyncClient, world: dict[str, Tenant], tmp_path: Path
) -> None:
    _install_voice(tmp_path, "secret")  # outside voices/: not the operator's catalogue
    _install_voice(tmp_path / "voices", "operator-voice")
    h = world["A"].key_headers()
    for choice in BAD_NAMES:
        r = await api.post("/v1/agents", json={**BASE, **choice}, headers=h)
        assert r.status_code == 422, (choice, r.text)
        kind = next(iter(choice))
        field = "tts.voice" if kind == "tts" else f"{kind}.model"
        message = r.json()["error"]["message"]
        assert f"{field}: " in message and "is not an installed" in message, message
    ok = {"tts": {"provider": "local", "voice": "operator-voice"}}
    r = await api.post("/v1/agents", json={**BASE, **ok}, headers=h)
    assert r.status_code == 201, r.text
    # The configured OpenAI key makes auto pick OpenAI: the name is that provider's own.
    cloud = {"llm": {"model": "gpt-4.1-mini"}, "tts": {"provider": "openai", "voice": "alloy"}}
    assert (await api.post("/v1/agents", json={**BASE, **cloud}, headers=h)).status_code == 201


async def test_stored_paths_are_never_opened_by_the_runtime(
    world: dict[str, Tenant],
    conn: asyncpg.Connection,
    db_pool: asyncpg.Pool,
    db_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # were a hub id passed on, nothing is fetched
    monkeypatch.setenv("DATABASE_URL", db_url)
    settings = _settings(tmp_path)
    _install_voice(tmp_path, "secret")
    _install_voice(tmp_path / "voices", "operator-voice")
    org = world["A"].org
    builders: dict[str, ProviderEntry] = {e.kind: e for e in ENTRIES}
    good = {"tts": {"provider": "local", "voice": "operator-voice"}}
    agents: list[AgentConfig] = []
    for choice in [*BAD_NAMES, good]:
        doc = {**BASE, **choice}
        agent_id = await insert(conn, "agents", {"org_id": org.id, "config": json.dumps(doc)})
        call_id = await insert(
            conn, "calls", {"org_id": org.id, "direction": "web", "agent_id": agent_id}
        )
        store = CallStore(db_pool, settings)
        if choice is good:
            agents.append((await store.load(call_id)).agent)
        else:  # the runtime's load refuses it; the providers refuse it on their own too
            with pytest.raises(CallRefused, match="not an installed|not found|installed"):
                await store.load(call_id)
            agents.append(AgentConfig.model_validate(doc))
    for choice, agent in zip(BAD_NAMES, agents, strict=False):
        entry = builders[next(iter(choice))]
        with pytest.raises(ProviderUnavailable, match="not found \\(installed: "):
            entry.build(agent, settings)
        assert entry.prewarm is not None
        with pytest.raises(ProviderUnavailable, match="not found"):
            entry.prewarm(agent, settings)
    tts = builders["tts"].build(agents[-1], settings)
    assert getattr(tts, "_voice_path", None) == str(tmp_path / "voices/operator-voice.onnx")
    # Idle workers prewarm only setups whose names are installed.
    voices = {a.tts.voice for a in agents_to_prewarm(settings)}
    assert voices == {None, "operator-voice"}
    assert synthesize(str(tmp_path / "voices/operator-voice.onnx"), "Hello.")
