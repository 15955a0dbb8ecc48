"""The voice_fillers graph says "One moment." while a tool keeps the caller waiting."""

from collections.abc import Callable
from pathlib import Path

from tests.conftest import make_agent
from tests.conversation import converse
from tests.fakes import Rule, Script, ToolCallReply


async def test_filler_while_a_tool_runs(tmp_path: Path, transcribe: Callable[[Path], str]) -> None:
    tool = {"type": "http", "name": "hours", "description": "Hours", "url": "http://127.0.0.1:9/"}
    agent = make_agent(pipeline="voice_fillers", tools=[tool])
    llm = Script(rules=[Rule("open", ToolCallReply("hours")), Rule("error", "Sorry, try later.")])
    result = await converse(agent, ["When are you open?"], llm, tmp_path)
    assert [t.text for t in result.turns if t.role == "assistant"] == ["Sorry, try later."]
    assert "moment" in transcribe(result.audio_files[0])
    assert "sorry" in transcribe(result.audio_files[-1])
