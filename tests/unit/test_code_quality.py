"""ruff, mypy --strict, and the layering rule: api → agents → pipelines → parley, never back,
with no import cycles between our modules."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("parley", "pipelines", "agents", "api", "scheduler")
# What each layer may import (besides itself). The CLI is the entry point above all layers.
ALLOWED = {
    "parley": {"parley"},
    "pipelines": {"parley", "pipelines"},
    "agents": {"parley", "pipelines", "agents"},
    "api": {"parley", "pipelines", "agents", "api"},
    "scheduler": {"parley", "pipelines", "agents", "scheduler"},
}
ENTRY_POINTS = {"parley.cli"}


def _run(*cmd: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=False)


def test_ruff_lint_and_format() -> None:
    lint = _run(sys.executable, "-m", "ruff", "check", ".")
    assert lint.returncode == 0, lint.stdout + lint.stderr
    fmt = _run(sys.executable, "-m", "ruff", "format", "--check", ".")
    assert fmt.returncode == 0, fmt.stdout + fmt.stderr


def test_mypy_strict() -> None:
    result = _run(sys.executable, "-m", "mypy")
    assert result.returncode == 0, result.stdout + result.stderr


def _modules() -> dict[str, Path]:
    mods = {}
    for pkg in PACKAGES:
        for path in (ROOT / pkg).rglob("*.py"):
            rel = path.relative_to(ROOT).with_suffix("")
            parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
            mods[".".join(parts)] = path
    return mods


def _imports(path: Path, module: str) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            if node.level:
                base = module.split(".")[: -node.level]
                found.add(".".join([*base, node.module]))
            else:
                found.add(node.module)
                found.update(f"{node.module}.{a.name}" for a in node.names)
    return found


def _graph() -> dict[str, set[str]]:
    mods = _modules()
    graph: dict[str, set[str]] = {}
    for name, path in mods.items():
        graph[name] = {i for i in _imports(path, name) if i in mods and i != name}
    return graph


def test_layers_never_import_backwards() -> None:
    bad = []
    for mod, deps in _graph().items():
        if mod in ENTRY_POINTS:
            continue
        layer = mod.split(".")[0]
        bad += [f"{mod} -> {d}" for d in deps if d.split(".")[0] not in ALLOWED[layer]]
    assert not bad, bad


def test_no_import_cycles() -> None:
    graph = _graph()

    # Packages import their submodules' names through __init__; a parent importing its own child
    # is how packages work, not a cycle, so only edges between unrelated modules are followed.
    def edges(m: str) -> set[str]:
        return {d for d in graph[m] if not d.startswith(m + ".")}

    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m: str) -> None:
        state[m] = 1
        stack.append(m)
        for d in edges(m):
            if state.get(d) == 1:
                pytest.fail("import cycle: " + " -> ".join([*stack[stack.index(d) :], d]))
            if d not in state:
                visit(d)
        stack.pop()
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m)


def test_modules_stay_small() -> None:
    big = {
        str(p.relative_to(ROOT)): n
        for p in _modules().values()
        if (n := len(p.read_text().splitlines())) > 400
    }
    assert not big, big
