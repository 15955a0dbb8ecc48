"""Config references and limits (issue 10): ``${secrets.NAME}`` / ``${env.NAME}`` only, the old
bare ``${NAME}`` refused with its fix, provider keys references only, and bounded sizes; every
problem is one line that says how to fix it."""

from __future__ import annotations

from typing import Any

import pytest

from parley.config import AgentConfig, parse_agent
from parley.errors import ConfigError
from parley.refs import MissingSecret, expand, stored_ref_problems

BASE: dict[str, Any] = {"name": "A", "system_prompt": "Be nice."}


def _tool(i: int = 0, **kw: Any) -> dict[str, Any]:
    tool = {"type": "http", "name": f"t{i}", "description": "d", "url": "https://example.com/x"}
    return {**tool, **kw}


def _nested(levels: int) -> dict[str, Any]:
    """An object schema with ``levels`` objects nested inside one another."""
    inner: dict[str, Any] = {"type": "string"}
    for _ in range(levels):
        inner = {"type": "object", "properties": {"x": inner}}
    return inner


def _problem(patch: dict[str, Any]) -> str:
    with pytest.raises(ConfigError) as info:
        parse_agent({**BASE, **patch})
    header, *problems = str(info.value).splitlines()
    assert header == "agent config is invalid:"
    assert len(problems) == 1, problems  # one line per problem
    assert "fix" in problems[0], problems[0]
    return problems[0]


@pytest.mark.parametrize(
    ("patch", "expected"),
    [
        ({"tools": [_tool(i) for i in range(33)]}, "at most 32 items"),
        ({"tools": [_tool(description="x" * 1025)]}, "at most 1024 characters"),
        ({"tools": [_tool(headers={f"H{i}": "v" for i in range(21)})]}, "at most 20 items"),
        ({"tools": [_tool(headers={"H" * 65: "v"})]}, "names are 1-64"),
        ({"tools": [_tool(headers={"H": "v" * 2049})]}, "at most 2048"),
        (
            {"tools": [_tool(parameters=_nested(1) | {"description": "x" * 8200})]},
            "at most 8192",
        ),
        ({"tools": [_tool(parameters=_nested(3))]}, "nests 7 levels of JSON, at most 6"),
        ({"system_prompt": "x" * 20_001}, "at most 20000 characters"),
        ({"llm": {"api_key": "sk-live-123"}}, "must be a reference such as ${secrets.MY_KEY}"),
        ({"tts": {"api_key": "${MY_KEY}"}}, "not a literal key"),
    ],
)
def test_limits_and_key_fields_say_what_to_fix(patch: dict[str, Any], expected: str) -> None:
    assert expected in _problem(patch)


def test_limits_allow_what_they_name() -> None:
    headers = {f"H{i}": "v" * 2048 for i in range(19)} | {"A" * 64: "${secrets.TOKEN}"}
    agent = parse_agent(
        {
            **BASE,
            "system_prompt": "x" * 20_000,
            "tools": [_tool(i, description="d" * 1024) for i in range(31)]
            + [_tool(31, headers=headers, parameters=_nested(2))],
            "llm": {"api_key": "${secrets.LLM_KEY}", "base_url": "https://llm.example.com/v1"},
            "tts": {"api_key": "${env.TTS_KEY}"},
        }
    )
    assert len(agent.tools) == 32


def test_the_old_bare_form_names_its_fix() -> None:
    line = _problem({"tools": [_tool(headers={"Authorization": "Bearer ${CRM_TOKEN}"})]})
    assert "header Authorization" in line
    assert "use ${secrets.CRM_TOKEN} and store it with PUT /v1/secrets/CRM_TOKEN" in line


def _agent(header: str, **kw: Any) -> AgentConfig:
    return parse_agent({**BASE, "tools": [_tool(headers={"Authorization": header})], **kw})


def test_stored_configs_may_not_name_the_environment() -> None:
    assert stored_ref_problems(_agent("Bearer ${secrets.TOKEN}")) == []
    (problem,) = stored_ref_problems(_agent("Bearer ${env.TOKEN}"))
    assert problem.startswith("tools.t0.headers.Authorization: ")
    assert "cannot read the server's environment" in problem and "${secrets.NAME}" in problem
    keyed = _agent("x", llm={"api_key": "${env.K}"}, tts={"api_key": "${env.K}"})
    assert [p.split(":")[0] for p in stored_ref_problems(keyed)] == ["llm.api_key", "tts.api_key"]


def test_expand_fills_secrets_and_only_a_trusted_files_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TOKEN", "from-env")
    stored = _agent("x").with_secrets({"TOKEN": "from-org"})
    assert expand("Bearer ${secrets.TOKEN}", stored) == "Bearer from-org"
    with pytest.raises(MissingSecret, match=r"reference \$\{env.TOKEN\} is not allowed"):
        expand("Bearer ${env.TOKEN}", stored)
    with pytest.raises(MissingSecret, match=r"secret OTHER is not set .*PUT /v1/secrets/OTHER"):
        expand("${secrets.OTHER}", stored)
    # A secret never falls back to the environment, even for an author's own file.
    own = _agent("x").as_trusted()
    assert expand("${env.TOKEN}", own) == "from-env"
    with pytest.raises(MissingSecret, match="secret TOKEN is not set"):
        expand("${secrets.TOKEN}", own)
    with pytest.raises(MissingSecret, match="environment variable NOPE is not set"):
        expand("${env.NOPE}", own)
    # Names migrated from a lower-case ${name} can't be stored: the fix says the stored form.
    with pytest.raises(MissingSecret, match=r"\$\{secrets.CRM\}.*PUT /v1/secrets/CRM"):
        expand("${secrets.crm}", stored)


def test_bound_secrets_and_trust_are_never_serialised() -> None:
    agent = _agent("Bearer ${secrets.TOKEN}").with_secrets({"TOKEN": "s3cret"}).as_trusted()
    dumped = agent.model_dump_json()
    assert "s3cret" not in dumped and "trusted" not in dumped
    again = AgentConfig.model_validate_json(dumped)
    assert (again.trusted, dict(again.secrets)) == (False, {})
