"""End to end through the real pipeline (Silero VAD, Whisper, Piper, real transports in time):
questions spoken by Piper, answers from a local OpenAI-compatible server or the bundled SmolLM2,
the agent's audio transcribed back with Whisper."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from agents.file.session import talk
from parley.settings import Settings
from tests.conftest import make_agent
from tests.fakes import FakeCloud, Script

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]
ANSWER = "We are open on Saturday from nine until one."
QUESTION = "What time do you open on Saturday?"


DIGITS = {"one": "1", "two": "2", "nine": "9", "eighty": "80"}


def _words(text: str) -> set[str]:
    """Lower-cased words, with number words as digits (Whisper writes "9" for "nine")."""
    words = (w.strip(".,!?").lower() for w in text.split())
    return {DIGITS.get(w, w) for w in words if w}


def test_parley_talk_speaks_the_llm_answer(
    tmp_path: Path, speak: Callable[[str], Path], transcribe: Callable[[Path], str]
) -> None:
    question = speak(QUESTION)
    with FakeCloud(Script(default=ANSWER)) as cloud:
        agent_file = tmp_path / "agent.yaml"
        agent_file.write_text(
            yaml.safe_dump(
                {
                    "name": "Clinic",
                    "system_prompt": "You answer questions about opening hours.",
                    "greeting": "Hello, clinic here.",
                    "llm": {
                        "provider": "openai",
                        "base_url": cloud.openai_base_url,
                        "model": "m",
                        "api_key": "${env.OPENAI_API_KEY}",  # the author's own, explicitly
                    },
                    "turns": {"vad_stop_secs": 0.3},
                }
            )
        )
        out = tmp_path / "out"
        env = {**os.environ, "OPENAI_API_KEY": "test-key", "PARLEY_DATA_DIR": str(tmp_path)}
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "parley.cli",
                "talk",
                "--agent",
                str(agent_file),
                "--wav",
                str(question),
                "--out",
                str(out),
            ],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert proc.returncode == 0, proc.stderr[-3000:]
        llm_request = cloud.requests[0]
    doc = json.loads((out / "transcript.json").read_text())
    assert doc["status"] == "completed" and doc["end_reason"] == "script_done"
    assert doc["providers"] == {"stt": "local", "llm": "openai", "tts": "local"}
    roles = [t["role"] for t in doc["turns"]]
    assert roles == ["assistant", "user", "assistant"]
    greeting, user, reply = doc["turns"]
    assert greeting["text"] == "Hello, clinic here." and greeting["latency"] is None
    assert {"saturday", "open"} <= _words(user["text"])
    assert reply["text"] == ANSWER
    lat = reply["latency"]
    assert 0 < lat["stt_final_ms"] <= lat["llm_first_token_ms"] <= lat["tts_first_audio_ms"]
    assert lat["tts_first_audio_ms"] <= lat["voice_to_voice_ms"]
    # The LLM got the system prompt, the greeting and what Whisper heard.
    msgs = llm_request["messages"]
    assert msgs[0] == {"role": "system", "content": "You answer questions about opening hours."}
    assert msgs[1]["role"] == "assistant" and msgs[-1]["role"] == "user"
    assert "saturday" in msgs[-1]["content"].lower()
    # What the agent said out loud: the greeting, then the answer.
    files = doc["audio_files"]
    assert files[0] == "agent-turn-1.wav"
    assert "clinic" in transcribe(out / files[0])
    spoken = " ".join(transcribe(out / f) for f in files[1:])
    assert {"saturday", "9", "1"} <= _words(spoken), spoken


async def test_fully_local_stack_answers_intelligibly(
    tmp_path: Path, speak: Callable[[str], Path], transcribe: Callable[[Path], str]
) -> None:
    # SmolLM2-135M is a toy: we check that it answers with speech Whisper can read back, not facts.
    agent = make_agent(
        system_prompt="You are a helpful receptionist. Answer in one short sentence.",
        llm={"max_tokens": 40},
    )
    result = await talk(
        agent,
        [speak("Hello, can you help me book an appointment?")],
        tmp_path,
        Settings(data_dir=tmp_path),
    )
    assert result.providers == {"stt": "local", "llm": "local", "tts": "local"}
    replies = [t for t in result.turns if t.role == "assistant"]
    assert replies and len(replies[0].text.split()) >= 3
    heard = " ".join(transcribe(f) for f in result.audio_files)
    overlap = _words(heard) & _words(replies[0].text)
    assert len(overlap) >= max(2, len(_words(replies[0].text)) // 3), (heard, replies[0].text)


async def test_speculative_transcription_is_used(
    tmp_path: Path, speak: Callable[[str], Path]
) -> None:
    from pipelines.registry import Services, build_services
    from pipelines.services.local.stt import SpeculativeWhisperSTTService

    with FakeCloud(Script(default=ANSWER)) as cloud:
        llm = {"provider": "openai", "base_url": cloud.openai_base_url, "model": "m"}
        llm["api_key"] = "${secrets.LLM_KEY}"  # its own server gets its own key
        agent = make_agent(llm=llm).with_secrets({"LLM_KEY": cloud.api_key or ""})
        settings = Settings(data_dir=tmp_path, openai_api_key="test-key")  # type: ignore[call-arg]
        services: Services = build_services(agent, settings)
        result = await talk(agent, [speak(QUESTION)], tmp_path, settings, services=services)
    assert isinstance(services.stt, SpeculativeWhisperSTTService)
    assert services.stt.speculative_hits == 1  # the words came from the early transcription
    user = next(t for t in result.turns if t.role == "user")
    assert {"saturday", "open"} <= _words(user.text)
