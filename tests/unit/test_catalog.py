"""What the operator installed decides what agent configs may name: pipelines (bundled, the
PARLEY_PIPELINES setting, the parley.pipelines entry points) and local models and voices."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from pydantic import ValidationError

from parley.errors import ConfigError, ProviderUnavailable
from parley.settings import Settings
from pipelines import catalog, voice
from pipelines.services.base import Kind
from pipelines.services.local.models import (
    BUNDLED,
    catalogue_problems,
    installed,
    local_path,
    whisper_path,
)
from tests.conftest import make_agent


def _settings(tmp_path: Path, **kw: object) -> Settings:
    return Settings(data_dir=tmp_path, **kw)  # type: ignore[arg-type]


def _module(folder: Path, body: str = "") -> str:
    """A fresh importable module whose import leaves a marker file; returns its name."""
    name = f"graph_{uuid.uuid4().hex[:10]}"
    marker = folder / f"{name}.imported"
    (folder / f"{name}.py").write_text(
        f"from pathlib import Path\nPath({str(marker)!r}).write_text('yes')\n"
        f"from pipelines.voice import build\n{body}"
    )
    return name


def test_pipelines_setting_parses_and_explains(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PARLEY_PIPELINES", " support=acme.graphs:build, acme.v2=acme.v2:make ")
    assert Settings().pipelines == {"support": "acme.graphs:build", "acme.v2": "acme.v2:make"}
    for bad in ("support", "support=acme", "bad name=acme:build", "x=acme:build; rm"):
        monkeypatch.setenv("PARLEY_PIPELINES", bad)
        with pytest.raises(ValidationError, match="fix: PARLEY_PIPELINES=name=package"):
            Settings()


def test_registered_names_and_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(tmp_path))
    ours = _module(tmp_path)
    dist = tmp_path / "acme_graphs-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: acme-graphs\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(
        f"[parley.pipelines]\nacme = {ours}:build\nvoice = os:system\nsupport = os:system\n"
    )
    settings = _settings(tmp_path, pipelines={"support": f"{ours}:build"})
    allowed = catalog.registered(settings)
    # Bundled names cannot be taken over; the operator's setting wins over a package's entry.
    assert allowed["voice"] == "pipelines.voice:build"
    assert allowed["support"] == allowed["acme"] == f"{ours}:build"
    assert not (tmp_path / f"{ours}.imported").exists()  # listing names imports nothing
    for name in ("acme", "support"):
        assert catalog.graph(make_agent(pipeline=name), settings) is voice.build
    assert (tmp_path / f"{ours}.imported").exists()


def test_untrusted_configs_never_import_a_named_module(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.syspath_prepend(str(tmp_path))
    canary = _module(tmp_path)
    settings = _settings(tmp_path)
    for name in (f"{canary}:build", canary, "os:system"):
        stored = make_agent(pipeline=name)
        assert not stored.trusted
        with pytest.raises(ConfigError, match=r"not a registered pipeline .*voice, voice_fillers"):
            catalog.graph(stored, settings)
        [problem] = catalog.stored_pipeline_problems(stored, settings)
        assert problem.startswith("pipeline: ") and "\n" not in problem
    assert not (tmp_path / f"{canary}.imported").exists()
    # The author's own file may still name its own code.
    assert catalog.graph(make_agent(pipeline=f"{canary}:build").as_trusted(), settings)
    assert (tmp_path / f"{canary}.imported").exists()


def test_a_broken_registration_is_a_config_error(tmp_path: Path) -> None:
    settings = _settings(tmp_path, pipelines={"gone": "nowhere_at_all:build"})
    with pytest.raises(ConfigError, match="pipeline 'gone' .*could not be loaded"):
        catalog.graph(make_agent(pipeline="gone"), settings)


def _install(data_dir: Path) -> None:
    models, voices = data_dir / "models", data_dir / "voices"
    (models / "base.en").mkdir(parents=True)
    (models / "base.en" / "model.bin").write_bytes(b"")
    (models / "not-a-model").mkdir()  # no model.bin
    (models / "qwen-0.5b.gguf").write_bytes(b"")
    (models / "notes.txt").write_text("")
    voices.mkdir()
    for stem in ("en_GB-alba-medium", "half-installed"):
        (voices / f"{stem}.onnx").write_bytes(b"")
    (voices / "en_GB-alba-medium.onnx.json").write_text("{}")
    (voices / "bad name.onnx").write_bytes(b"")
    (voices / "bad name.onnx.json").write_text("{}")


def test_catalogue_lists_bundled_and_installed_names(tmp_path: Path) -> None:
    _install(tmp_path)
    assert installed("stt", tmp_path) == ["tiny.en", "base.en"]
    assert installed("llm", tmp_path) == ["smollm2-135m", "qwen-0.5b"]
    assert installed("tts", tmp_path) == ["en_US-joe-medium", "en_GB-alba-medium"]
    assert local_path("stt", None, tmp_path) == whisper_path()
    assert local_path("stt", "tiny.en", tmp_path) == whisper_path()
    assert local_path("stt", "base.en", tmp_path) == tmp_path / "models" / "base.en"
    assert local_path("llm", "qwen-0.5b", tmp_path) == tmp_path / "models" / "qwen-0.5b.gguf"
    voice_file = tmp_path / "voices" / "en_GB-alba-medium.onnx"
    assert local_path("tts", "en_GB-alba-medium", tmp_path) == voice_file


@pytest.mark.parametrize(
    ("kind", "name"),
    [
        ("stt", "/etc/passwd"),
        ("stt", "openai/whisper-large-v3"),
        ("stt", "large-v3"),  # faster-whisper would download it from the hub
        ("stt", "not-a-model"),
        ("llm", "../../x.gguf"),
        ("llm", "qwen-0.5b.gguf"),
        ("llm", str(Path.home())),
        ("tts", "../../../etc/passwd"),
        ("tts", "half-installed"),
        ("tts", "bad name"),
    ],
)
def test_anything_else_is_refused_naming_what_is_installed(
    tmp_path: Path, kind: Kind, name: str
) -> None:
    _install(tmp_path)
    with pytest.raises(ProviderUnavailable, match=f"not found \\(installed: {BUNDLED[kind]}"):
        local_path(kind, name, tmp_path)


def test_catalogue_problems_per_provider(tmp_path: Path) -> None:
    _install(tmp_path)
    local = _settings(tmp_path)
    ok = make_agent(
        stt={"provider": "local", "model": "base.en"},
        llm={"provider": "local", "model": "qwen-0.5b"},
        tts={"provider": "local", "voice": "en_GB-alba-medium"},
    )
    assert catalogue_problems(ok, local) == []
    bad = make_agent(stt={"model": "/etc/passwd"}, tts={"voice": "../x"})  # auto → local here
    assert [p.split(":")[0] for p in catalogue_problems(bad, local)] == ["stt.model", "tts.voice"]
    assert "use one of tiny.en, base.en" in catalogue_problems(bad, local)[0]
    # Auto picks Groq when its key is set: the name is the provider's, a plain string.
    cloud = _settings(tmp_path, groq_api_key="gsk_x")
    groq = make_agent(stt={"model": "whisper-large-v3-turbo"}, llm={"model": "openai/gpt-oss-120b"})
    assert catalogue_problems(groq, cloud) == []
    assert len(catalogue_problems(groq, local)) == 2  # the same config where auto is local
    long = make_agent(llm={"provider": "groq", "model": "m" * 129})
    tricky = make_agent(tts={"provider": "openai", "model": "tts-1\r\nX-Evil: 1", "voice": "alloy"})
    for agent in (long, tricky):
        [problem] = catalogue_problems(agent, cloud)
        assert "at most 128 printable characters" in problem
