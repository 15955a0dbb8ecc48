"""Turn-taking and call limits in real time: barge-in, the minimum-words interruption policy,
idle timeout and maximum duration."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from agents.file.session import talk
from parley.audio import Pcm
from parley.config import AgentConfig
from parley.settings import Settings
from tests.conftest import make_agent
from tests.fakes import FakeCloud, Rule, Script

pytestmark = pytest.mark.e2e
LONG = (
    "Our clinic offers check-ups, cleaning, fillings, crowns, whitening and braces. "
    "We also see children, and we have evening hours on Thursdays. "
    "Parking is free behind the building, and the bus stops right outside. "
    "New patients get a full examination and x-rays on their first visit."
)


def _agent(cloud: FakeCloud, **kw: object) -> AgentConfig:
    # The agent's own server gets the agent's own key (an organization secret).
    llm = {"provider": "openai", "base_url": cloud.openai_base_url, "model": "m"}
    llm["api_key"] = "${secrets.LLM_KEY}"
    return make_agent(llm=llm, **kw).with_secrets({"LLM_KEY": cloud.api_key or ""})


def _settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path, openai_api_key="test-key")  # type: ignore[call-arg]


async def test_barge_in_cuts_the_agent_off(tmp_path: Path, speak: Callable[[str], Path]) -> None:
    script = Script(rules=[Rule("services", LONG), Rule("price", "Eighty dollars.")])
    with FakeCloud(script) as cloud:
        result = await talk(
            _agent(cloud),
            [speak("What services do you offer?"), speak("Stop. What is the price of a check-up?")],
            tmp_path,
            _settings(tmp_path),
            barge_in_after_secs=1.5,
        )
    replies = [t for t in result.turns if t.role == "assistant"]
    assert replies[0].interrupted, replies
    # Only what was spoken before the interruption stays in the context/transcript.
    assert len(replies[0].text) < len(LONG)
    assert replies[-1].text == "Eighty dollars." and not replies[-1].interrupted
    users = [t.text.lower() for t in result.turns if t.role == "user"]
    assert any("price" in u for u in users)


async def test_min_words_policy_lets_the_agent_finish(
    tmp_path: Path, speak: Callable[[str], Path]
) -> None:
    script = Script(rules=[Rule("services", LONG)], default="Sure.")
    with FakeCloud(script) as cloud:
        agent = _agent(cloud, turns={"vad_stop_secs": 0.3, "min_words_to_interrupt": 4})
        result = await talk(
            agent,
            [speak("What services do you offer?"), speak("Okay.")],
            tmp_path,
            _settings(tmp_path),
            barge_in_after_secs=1.5,
        )
    first = next(t for t in result.turns if t.role == "assistant")
    assert first.text == LONG and not first.interrupted


async def test_idle_caller_ends_the_call(tmp_path: Path) -> None:
    with FakeCloud(Script()) as cloud:
        agent = _agent(cloud, idle_timeout_secs=5)
        silence = Pcm(bytes(16000 * 2), 16000)  # one second of nothing, then the caller waits
        result = await talk(agent, [silence], tmp_path, _settings(tmp_path), reply_timeout_secs=60)
    assert result.end_reason == "idle_timeout"
    assert result.turns == []


async def test_maximum_duration_ends_the_call(tmp_path: Path) -> None:
    with FakeCloud(Script()) as cloud:
        agent = _agent(cloud, max_duration_secs=10, idle_timeout_secs=600)
        silence = Pcm(bytes(16000 * 2), 16000)
        result = await talk(agent, [silence], tmp_path, _settings(tmp_path), reply_timeout_secs=60)
    assert result.end_reason == "max_duration"


async def test_end_call_tool_hangs_up(tmp_path: Path) -> None:
    from tests.conversation import converse
    from tests.fakes import ToolCallReply

    agent = make_agent(greeting="Hi there.", tools=[{"type": "end_call"}])
    llm = Script(rules=[Rule("bye", ToolCallReply("end_call"))])
    result = await converse(agent, ["Thanks, bye!", "Hello? Still there?"], llm, tmp_path)
    assert result.end_reason == "end_call"
    assert [t.role for t in result.turns] == ["assistant", "user"]  # nothing after the goodbye
