"""Groq (Whisper STT + LLM) and Deepgram (streaming STT) through the whole voice pipeline,
against local servers that speak their wire protocols and transcribe with the real Whisper."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from agents.file.session import talk
from parley.settings import Settings
from tests.conftest import make_agent
from tests.fakes import FakeCloud, Rule, Script

pytestmark = pytest.mark.e2e
QUESTION = "How much does a check-up cost?"
ANSWER = "A check-up costs eighty dollars."


async def test_groq_stt_and_llm(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    speak: Callable[[str], Path],
    transcribe: Callable[[Path], str],
    transcribe_wav_bytes: Callable[[bytes], str],
) -> None:
    script = Script(rules=[Rule("check", ANSWER)], default="Sorry, I did not catch that.")
    with FakeCloud(script, transcribe=transcribe_wav_bytes) as cloud:
        monkeypatch.setenv("GROQ_API_KEY", "test-key")
        monkeypatch.setenv("GROQ_BASE_URL", cloud.groq_base_url)
        result = await talk(make_agent(), [speak(QUESTION)], tmp_path, Settings(data_dir=tmp_path))
        uploads = list(cloud.transcriptions)
        chat = cloud.requests
    assert result.providers == {"stt": "groq", "llm": "groq", "tts": "local"}
    # Groq received the caller's speech as a WAV upload for its Whisper model.
    assert uploads and uploads[0].fields.get("model") == "whisper-large-v3-turbo"
    assert "check" in uploads[0].text
    assert chat[0]["model"] == "llama-3.3-70b-versatile"
    # On a loaded machine a noise during the greeting can reach the LLM first (as an
    # unrecognized interruption); the question itself must still arrive.
    assert any("check" in c["messages"][-1]["content"].lower() for c in chat), chat
    reply = [t for t in result.turns if t.role == "assistant"][-1]
    assert reply.text == ANSWER
    assert reply.latency is not None and reply.latency.voice_to_voice_ms is not None
    heard = " ".join(transcribe(f) for f in result.audio_files)
    assert "80" in heard or "eighty" in heard, heard


async def test_deepgram_streaming_stt(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    speak: Callable[[str], Path],
    transcribe_wav_bytes: Callable[[bytes], str],
) -> None:
    script = Script(rules=[Rule("check", ANSWER)], default="Sorry?")
    with FakeCloud(script, transcribe=transcribe_wav_bytes) as cloud:
        monkeypatch.setenv("DEEPGRAM_API_KEY", "test-key")
        monkeypatch.setenv("DEEPGRAM_BASE_URL", cloud.deepgram_base_url)
        llm = {"provider": "openai", "base_url": cloud.openai_base_url, "model": "m"}
        llm["api_key"] = "${secrets.LLM_KEY}"  # its own server gets its own key
        agent = make_agent(llm=llm).with_secrets({"LLM_KEY": cloud.api_key or ""})
        settings = Settings(data_dir=tmp_path, openai_api_key="test-key")  # type: ignore[call-arg]
        result = await talk(agent, [speak(QUESTION)], tmp_path, settings)
        sessions = list(cloud.deepgram_sessions)
    assert result.providers["stt"] == "deepgram"
    (session,) = sessions
    # Pipecat streamed 16 kHz linear PCM and asked Deepgram to finalize at the end of speech.
    assert session.param("encoding") == "linear16" and session.param("sample_rate") == "16000"
    assert session.param("model") == "nova-3-general"
    assert len(session.audio) > 16000 * 2  # more than a second of audio
    assert any(c.get("type") == "Finalize" for c in session.control)
    user = [t for t in result.turns if t.role == "user"]
    assert user and "check" in user[0].text.lower()
    assert [t for t in result.turns if t.role == "assistant"][-1].text == ANSWER
