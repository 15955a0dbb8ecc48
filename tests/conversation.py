"""Scripted conversations for pipeline tests: the caller's lines are spoken by Piper, the LLM is
a local OpenAI-compatible server following a script, everything else is the real pipeline."""

from __future__ import annotations

from pathlib import Path

from agents.file.demo import spoken
from agents.file.session import TalkResult, talk
from parley.config import AgentConfig
from parley.settings import Settings
from tests.fakes import FakeCloud, Script


async def converse(
    agent: AgentConfig, caller: list[str], llm: Script, out: Path, **talk_kw: object
) -> TalkResult:
    with FakeCloud(llm) as cloud:
        llm_choice = agent.llm.model_copy(
            update={
                "provider": "openai",
                "base_url": cloud.openai_base_url,
                "model": "scripted",
                "api_key": "${secrets.LLM_KEY}",  # its own server gets its own key
            }
        )
        agent = agent.model_copy(update={"llm": llm_choice})
        agent = agent.with_secrets({"LLM_KEY": cloud.api_key or ""})
        settings = Settings(data_dir=out, openai_api_key="test-key")  # type: ignore[call-arg]
        wavs = [spoken(line, settings) for line in caller]
        return await talk(agent, wavs, out, settings, **talk_kw)  # type: ignore[arg-type]
