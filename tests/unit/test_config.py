"""Agent config: presets load, bad configs name the field and the fix."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from parley.config import AgentConfig, HttpTool, load_agent, parse_agent, preset_names
from parley.errors import ConfigError


def test_three_presets_load_with_expected_tools() -> None:
    assert preset_names() == ["checkin", "dental", "tutor"]
    dental = load_agent("dental")
    assert dental.greeting and "Bright Smile" in dental.greeting
    kinds = {t.type for t in dental.tools}
    assert kinds == {"end_call", "http"}
    booking = next(t for t in dental.tools if isinstance(t, HttpTool))
    assert booking.parameters["required"] == ["name", "day"]
    assert load_agent("tutor").turns.smart_turn is True
    assert load_agent("checkin").turns.min_words_to_interrupt == 1


def test_yaml_and_json_files_load(tmp_path: Path) -> None:
    doc = {"name": "A", "system_prompt": "Be nice.", "llm": {"provider": "groq"}}
    (tmp_path / "a.json").write_text(json.dumps(doc))
    (tmp_path / "a.yaml").write_text("name: A\nsystem_prompt: Be nice.\nllm: {provider: groq}\n")
    assert load_agent(tmp_path / "a.json") == load_agent(tmp_path / "a.yaml")
    assert load_agent(tmp_path / "a.json").llm.provider == "groq"


@pytest.mark.parametrize(
    ("patch", "field", "fix"),
    [
        ({"sytem_prompt": "x"}, "sytem_prompt", "check its spelling"),
        ({"system_prompt": ""}, "system_prompt", "may not be empty"),
        ({"llm": {"provider": "gpt"}}, "llm.provider", "allowed values"),
        ({"turns": {"vad_stop_secs": 9}}, "turns.vad_stop_secs", "lower the value"),
        ({"language": "english"}, "language", "BCP-47"),
        (
            {"tools": [{"type": "http", "name": "x", "description": "d", "url": "ftp://h"}]},
            "tools.0.http.url",
            "http:// or https://",
        ),
        ({"tools": [{"type": "sms"}]}, "tools.0", "'end_call' or 'http'"),
        (
            {
                "tools": [
                    {
                        "type": "http",
                        "name": "x",
                        "description": "d",
                        "url": "http://h",
                        "parameters": {"type": "array"},
                    }
                ]
            },
            "tools.0.http.parameters",
            "JSON Schema object",
        ),
        ({"tools": [{"type": "end_call"}, {"type": "end_call"}]}, "(top level)", "unique"),
        ({"tools": [{"type": "end_call", "name": "end call"}]}, "(top level)", "letters"),
    ],
)
def test_invalid_config_names_field_and_fix(patch: dict[str, object], field: str, fix: str) -> None:
    data: dict[str, object] = {"name": "A", "system_prompt": "Be nice."}
    data.update(patch)
    with pytest.raises(ConfigError) as err:
        parse_agent(data, "agent.yaml")
    text = str(err.value)
    assert text.startswith("agent.yaml is invalid:")
    assert f"- {field}:" in text
    assert fix in text


def test_missing_file_and_broken_yaml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found .*preset name: checkin, dental, tutor"):
        load_agent(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid yaml"):
        load_agent(bad)
    (tmp_path / "list.yaml").write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="must be a mapping"):
        load_agent(tmp_path / "list.yaml")


def test_config_is_frozen_and_round_trips() -> None:
    cfg = load_agent("dental")
    again = AgentConfig.model_validate(cfg.model_dump(mode="json"))
    assert again.model_dump() == cfg.model_dump()
    # Trust belongs to the author's own file, not to the data: a stored copy is untrusted.
    assert cfg.trusted and not again.trusted
    with pytest.raises(ValueError):
        cfg.name = "other"  # type: ignore[misc]
