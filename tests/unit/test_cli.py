"""The ``parley`` command line as a user runs it: clear errors (exit 2), keyboard chat."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml

from tests.fakes import FakeCloud, Rule, Script

ROOT = Path(__file__).resolve().parents[2]


def parley(
    *args: str, stdin: str = "", env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "parley.cli", *args],
        cwd=ROOT,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
        check=False,
    )


def test_bad_inputs_exit_2_with_the_fix(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nsystem_prompt: ''\n")
    r = parley("agents", "check", str(bad))
    assert r.returncode == 2 and "system_prompt" in r.stderr and "fix:" in r.stderr
    r = parley("talk", "--agent", "dental", "--wav", str(tmp_path / "missing.wav"))
    assert r.returncode == 2 and "no such file" in r.stderr
    r = parley("talk", "--agent", "dental")
    assert r.returncode == 2 and "--wav" in r.stderr
    assert "Traceback" not in r.stderr


def test_keyboard_chat(tmp_path: Path) -> None:
    with FakeCloud(Script(rules=[Rule("price", "Eighty dollars.")])) as cloud:
        agent = tmp_path / "a.yaml"
        agent.write_text(
            yaml.safe_dump(
                {
                    "name": "A",
                    "system_prompt": "Be brief.",
                    "greeting": "Hi!",
                    # The author's own file may hand its own key to its own server, explicitly.
                    "llm": {
                        "provider": "openai",
                        "base_url": cloud.openai_base_url,
                        "model": "m",
                        "api_key": "${env.OPENAI_API_KEY}",
                    },
                }
            )
        )
        r = parley(
            "talk",
            "--agent",
            str(agent),
            "--text",
            stdin="What is the price?\nquit\n",
            env={"OPENAI_API_KEY": "test-key"},
        )
    assert r.returncode == 0, r.stderr[-2000:]
    assert "agent> Hi!" in r.stdout and "Eighty dollars." in r.stdout
