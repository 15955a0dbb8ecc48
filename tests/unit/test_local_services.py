"""Offline providers: models load once per process, the greeting is synthesized at prewarm and
replayed from cache, and local LLM generation stops when its stream is closed (barge-in)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from pipecat.frames.frames import TTSAudioRawFrame, TTSSpeakFrame
from pipecat.tests.utils import run_test

from parley.settings import Settings
from pipelines.registry import build_services, prewarm
from pipelines.services.local.llm import llama_model, to_llama_messages
from pipelines.services.local.models import smollm_path
from pipelines.services.local.stt import LocalWhisperSTTService
from tests.conftest import make_agent

GREETING = "Hello, this is the test clinic."


def test_models_load_once_per_process(tmp_path: Path) -> None:
    agent = make_agent()
    a = build_services(agent, Settings(data_dir=tmp_path))
    b = build_services(agent, Settings(data_dir=tmp_path))
    assert isinstance(a.stt, LocalWhisperSTTService)
    assert a.stt._model._model is b.stt._model._model  # type: ignore[attr-defined]
    assert a.tts._voice is b.tts._voice  # type: ignore[attr-defined]


async def test_greeting_is_replayed_from_the_prewarm_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    agent = make_agent(greeting=GREETING)
    assert prewarm(agent, Settings(data_dir=tmp_path)) == {
        "stt": "local",
        "llm": "local",
        "tts": "local",
    }
    tts = build_services(agent, Settings(data_dir=tmp_path)).tts

    def no_synthesis(*_a: Any, **_k: Any) -> Any:
        raise AssertionError("the greeting was synthesized again")

    monkeypatch.setattr(tts._voice, "synthesize", no_synthesis)  # type: ignore[attr-defined]
    down, _ = await run_test(tts, frames_to_send=[TTSSpeakFrame(GREETING)])
    audio = b"".join(f.audio for f in down if isinstance(f, TTSAudioRawFrame))
    assert len(audio) > 24000 * 2 * 1.0  # more than a second of speech at 24 kHz


def test_message_flattening_for_chat_templates() -> None:
    msgs = to_llama_messages(
        [
            {"role": "system", "content": "S"},
            {"role": "developer", "content": "D"},
            {
                "role": "user",
                "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}],
            },
            {"role": "assistant", "content": None, "tool_calls": [{"id": "x"}]},
            {"role": "tool", "content": '{"ok": true}'},
        ]
    )
    assert msgs == [
        {"role": "system", "content": "S"},
        {"role": "system", "content": "D"},
        {"role": "user", "content": "a b"},
        {"role": "user", "content": '(tool result) {"ok": true}'},
    ]


async def test_closing_the_stream_stops_generation() -> None:
    from pipelines.services.local.llm import _Client

    client = _Client(llama_model(str(smollm_path())), repeat_penalty=1.15)
    stream = await client.chat.completions.create(
        messages=[{"role": "user", "content": "Count from one to two hundred."}],
        max_tokens=400,
        temperature=0.0,
    )
    got = []
    async for chunk in stream:
        got.append(chunk)
        if len(got) == 5:
            break  # like an interruption: Pipecat closes the iterator
    await stream.close()
    t0 = time.monotonic()
    stream._thread.join(timeout=5)
    assert not stream._thread.is_alive()
    assert time.monotonic() - t0 < 1.0  # stopped between tokens, not after 400 of them
    assert got[0].choices[0].delta is not None
