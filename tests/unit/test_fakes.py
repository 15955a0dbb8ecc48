"""The fake clouds in ``tests/fakes`` driven by the real SDKs and Pipecat service classes."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import groq
import openai
import pytest
from deepgram import AsyncDeepgramClient, DeepgramClientEnvironment
from deepgram.core import ApiError
from deepgram.listen.v1.types import ListenV1Finalize, ListenV1Results
from openai.types.chat import ChatCompletionFunctionToolParam
from pipecat.adapters.llm.schemas.function_schema import FunctionSchema
from pipecat.frames.frames import (
    FunctionCallInProgressFrame,
    InputAudioRawFrame,
    InterimTranscriptionFrame,
    LLMContextFrame,
    LLMTextFrame,
    TranscriptionFrame,
    VADUserStartedSpeakingFrame,
    VADUserStoppedSpeakingFrame,
)
from pipecat.processors.aggregators.llm_context import LLMContext
from pipecat.services.deepgram.stt import DeepgramSTTService
from pipecat.services.groq.llm import GroqLLMService
from pipecat.services.groq.stt import GroqSTTService
from pipecat.services.llm_service import FunctionCallParams
from pipecat.services.openai.llm import OpenAILLMService
from pipecat.tests.utils import SleepFrame, run_test

from tests.fakes import (
    DeepgramOptions,
    FakeCloud,
    Script,
    TextReply,
    ToolCallReply,
    pcm_to_wav,
    silence,
    tone,
)

KEY = "test-key"
WEATHER_TOOL: ChatCompletionFunctionToolParam = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}


def _script() -> Script:
    return Script(
        rules=[
            ("weather", ToolCallReply("get_weather", {"city": "Paris", "unit": "celsius"})),
            ("temp_c", TextReply("It is 21 degrees in Paris.")),
            ("hello", "Hi there! How can I help you today?"),
        ],
        default="Sorry, I did not get that.",
    )


@pytest.fixture
def cloud() -> Iterator[FakeCloud]:
    with FakeCloud(_script(), transcribe="what is the weather in paris", api_key=KEY) as c:
        yield c


@pytest.mark.asyncio
async def test_openai_streams_text_word_by_word_with_usage(cloud: FakeCloud) -> None:
    client = openai.AsyncOpenAI(api_key=KEY, base_url=cloud.openai_base_url)
    stream = await client.chat.completions.create(
        model="llama3.2",
        messages=[
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Hello, who are you?"},
        ],
        stream=True,
        stream_options={"include_usage": True},
    )
    pieces: list[str] = []
    finish: list[str | None] = []
    usage = None
    async for chunk in stream:
        if chunk.usage:
            usage = chunk.usage
        for choice in chunk.choices:
            if choice.delta.content:
                pieces.append(choice.delta.content)
            finish.append(choice.finish_reason)
    assert "".join(pieces) == "Hi there! How can I help you today?"
    assert len(pieces) == 8  # word by word
    assert finish[-1] == "stop"
    assert usage is not None and usage.completion_tokens == 8
    assert usage.total_tokens == usage.prompt_tokens + 8
    assert cloud.requests[0]["model"] == "llama3.2"
    assert cloud.requests[0]["messages"][-1] == {"role": "user", "content": "Hello, who are you?"}


@pytest.mark.asyncio
async def test_groq_path_streams_tool_call_then_answers_tool_result(cloud: FakeCloud) -> None:
    client = openai.AsyncOpenAI(api_key=KEY, base_url=cloud.groq_base_url)
    messages: list[Any] = [{"role": "user", "content": "What's the WEATHER in Paris?"}]
    stream = await client.chat.completions.create(
        model="openai/gpt-oss-120b", messages=messages, tools=[WEATHER_TOOL], stream=True
    )
    names, ids, args, finish = "", "", "", None
    n_chunks = 0
    async for chunk in stream:
        n_chunks += 1
        choice = chunk.choices[0]
        finish = choice.finish_reason or finish
        for call in choice.delta.tool_calls or []:
            assert call.index == 0
            ids += call.id or ""
            if call.function:
                names += call.function.name or ""
                args += call.function.arguments or ""
    assert names == "get_weather"
    assert ids.startswith("call_")
    assert json.loads(args) == {"city": "Paris", "unit": "celsius"}
    assert finish == "tool_calls"
    assert n_chunks > 3  # id+name chunk, several argument fragments, finish chunk
    assert cloud.requests[0]["tools"] == [WEATHER_TOOL]

    messages += [
        {
            "role": "assistant",
            "tool_calls": [
                {"id": ids, "type": "function", "function": {"name": names, "arguments": args}}
            ],
        },
        {"role": "tool", "tool_call_id": ids, "content": '{"temp_c": 21}'},
    ]
    reply = await client.chat.completions.create(model="openai/gpt-oss-120b", messages=messages)
    assert reply.choices[0].message.content == "It is 21 degrees in Paris."
    assert reply.choices[0].finish_reason == "stop"
    assert cloud.requests[1]["messages"][-1]["role"] == "tool"


@pytest.mark.asyncio
async def test_wrong_key_gets_openai_style_401(cloud: FakeCloud) -> None:
    for base_url in (cloud.openai_base_url, cloud.groq_base_url):
        client = openai.AsyncOpenAI(api_key="wrong-key", base_url=base_url, max_retries=0)
        with pytest.raises(openai.AuthenticationError) as info:
            await client.chat.completions.create(
                model="m", messages=[{"role": "user", "content": "hi"}]
            )
        assert info.value.status_code == 401
        assert info.value.code == "invalid_api_key"
    assert cloud.requests == []


@pytest.mark.asyncio
async def test_first_token_delay_and_queue() -> None:
    script = Script(queue=["first", "second"], default="fallback", first_token_delay_s=0.3)
    async with FakeCloud(script) as cloud:
        client = openai.AsyncOpenAI(api_key=KEY, base_url=cloud.openai_base_url)
        texts: list[str] = []
        for _ in range(3):
            started = time.monotonic()
            stream = await client.chat.completions.create(
                model="m", messages=[{"role": "user", "content": "go"}], stream=True
            )
            first_token_at = None
            text = ""
            async for chunk in stream:
                if chunk.choices and chunk.choices[0].delta.content:
                    first_token_at = first_token_at or time.monotonic() - started
                    text += chunk.choices[0].delta.content
            assert first_token_at is not None and 0.3 <= first_token_at < 2.0
            texts.append(text)
    assert texts == ["first", "second", "fallback"]


@pytest.mark.asyncio
async def test_pipecat_openai_llm_service_streams_text(cloud: FakeCloud) -> None:
    llm = OpenAILLMService(
        api_key=KEY,
        base_url=cloud.openai_base_url,
        settings=OpenAILLMService.Settings(model="llama3.2"),
    )
    context = LLMContext(messages=[{"role": "user", "content": "hello"}])
    down, _ = await run_test(llm, frames_to_send=[LLMContextFrame(context=context)])
    text = "".join(f.text for f in down if isinstance(f, LLMTextFrame))
    assert text == "Hi there! How can I help you today?"
    assert cloud.requests[0]["stream"] is True
    assert cloud.requests[0]["stream_options"] == {"include_usage": True}


@pytest.mark.asyncio
async def test_pipecat_groq_llm_service_runs_tool_call(cloud: FakeCloud) -> None:
    calls: list[dict[str, Any]] = []

    async def get_weather(params: FunctionCallParams) -> None:
        calls.append(dict(params.arguments))
        await params.result_callback({"temp_c": 21})

    llm = GroqLLMService(api_key=KEY, base_url=cloud.groq_base_url)
    llm.register_function("get_weather", get_weather)
    schema = FunctionSchema(
        name="get_weather",
        description="Current weather for a city",
        properties={"city": {"type": "string"}},
        required=["city"],
    )
    context = LLMContext(
        messages=[{"role": "user", "content": "weather in paris?"}], tools=[schema]
    )
    down, _ = await run_test(llm, frames_to_send=[LLMContextFrame(context=context)])
    assert calls == [{"city": "Paris", "unit": "celsius"}]
    in_progress = [f for f in down if isinstance(f, FunctionCallInProgressFrame)]
    assert [f.function_name for f in in_progress] == ["get_weather"]
    sent_tools = cloud.requests[0]["tools"]
    assert sent_tools[0]["function"]["name"] == "get_weather"
    assert cloud.requests[0]["model"] == "openai/gpt-oss-120b"


@pytest.mark.asyncio
async def test_groq_sdk_and_openai_sdk_transcriptions(cloud: FakeCloud) -> None:
    wav = pcm_to_wav(tone(0.5) + silence(0.2), 16000)
    groq_client = groq.AsyncGroq(api_key=KEY, base_url=cloud.groq_sdk_base_url)
    result = await groq_client.audio.transcriptions.create(
        file=("audio.wav", wav, "audio/wav"),
        model="whisper-large-v3-turbo",
        response_format="json",
        language="en",
        temperature=0.0,
    )
    assert result.text == "what is the weather in paris"

    oai = openai.AsyncOpenAI(api_key=KEY, base_url=cloud.groq_base_url)
    verbose = await oai.audio.transcriptions.create(
        file=("audio.wav", wav, "audio/wav"),
        model="whisper-large-v3-turbo",
        response_format="verbose_json",
        prompt="weather talk",
    )
    assert verbose.text == "what is the weather in paris"
    assert verbose.duration == pytest.approx(0.7, abs=0.01)
    assert verbose.segments and verbose.segments[0].end == pytest.approx(0.7, abs=0.01)

    first, second = cloud.transcriptions
    assert first.wav == wav and second.wav == wav
    assert first.path == "/openai/v1/audio/transcriptions"
    assert first.fields == {
        "model": "whisper-large-v3-turbo",
        "response_format": "json",
        "language": "en",
        "temperature": "0.0",
    }
    assert second.fields["prompt"] == "weather talk"
    assert first.filename == "audio.wav"


@pytest.mark.asyncio
async def test_pipecat_groq_stt_service_transcribes_segment(cloud: FakeCloud) -> None:
    stt = GroqSTTService(api_key=KEY, base_url=cloud.groq_base_url)
    audio = tone(0.6)
    frames: list[Any] = [VADUserStartedSpeakingFrame()]
    frames += [
        InputAudioRawFrame(audio=audio[i : i + 640], sample_rate=16000, num_channels=1)
        for i in range(0, len(audio), 640)
    ]
    frames += [VADUserStoppedSpeakingFrame(), SleepFrame(0.3)]
    down, _ = await run_test(stt, frames_to_send=frames)
    texts = [f.text for f in down if isinstance(f, TranscriptionFrame)]
    assert texts == ["what is the weather in paris"]
    call = cloud.transcriptions[0]
    assert call.wav[:4] == b"RIFF" and len(call.wav) > len(audio)
    assert call.fields["model"] == "whisper-large-v3-turbo"
    assert call.fields["language"] == "en"


def _deepgram_client(cloud: FakeCloud, key: str = KEY) -> AsyncDeepgramClient:
    """Built exactly as ``DeepgramSTTService`` builds it for a custom ``base_url``."""
    ws_url = cloud.deepgram_base_url
    http_url = ws_url.replace("ws://", "http://")
    env = DeepgramClientEnvironment(
        base=http_url, production=ws_url, agent=ws_url, agent_rest=http_url
    )
    return AsyncDeepgramClient(api_key=key, environment=env)


def _pipecat_query() -> dict[str, Any]:
    """The ``listen.v1.connect`` kwargs ``DeepgramSTTService`` sends (rate fixed at start)."""
    kwargs: dict[str, Any] = DeepgramSTTService(api_key=KEY)._build_connect_kwargs()
    return {**kwargs, "sample_rate": "16000"}


PIPECAT_QUERY = _pipecat_query()


@pytest.mark.asyncio
async def test_deepgram_sdk_finalize_gives_final_transcript(cloud: FakeCloud) -> None:
    received: list[Any] = []
    client = _deepgram_client(cloud)
    async with client.listen.v1.connect(**PIPECAT_QUERY) as conn:
        audio = silence(0.2) + tone(0.8) + silence(0.2)
        for i in range(0, len(audio), 640):
            await conn.send_media(audio[i : i + 640])
        await conn.send_keep_alive()
        await conn.send_finalize(ListenV1Finalize(type="Finalize"))
        while True:
            message = await conn.recv()
            received.append(message)
            if isinstance(message, ListenV1Results) and message.is_final:
                break
        await conn.send_close_stream()
        async for message in conn:
            received.append(message)

    interim, final, metadata = received
    assert isinstance(interim, ListenV1Results) and interim.is_final is False
    assert isinstance(final, ListenV1Results)
    assert final.channel.alternatives[0].transcript == "what is the weather in paris"
    assert final.is_final and final.speech_final and final.from_finalize
    words = final.channel.alternatives[0].words
    assert [w.word for w in words] == ["what", "is", "the", "weather", "in", "paris"]
    assert words[0].start == pytest.approx(0.2, abs=0.03)
    assert words[-1].end == pytest.approx(1.0, abs=0.03)
    assert final.metadata.model_info.arch == "nova-3"
    assert type(metadata).__name__ == "ListenV1Metadata"
    assert metadata.duration == pytest.approx(1.2, abs=0.01)

    session = cloud.deepgram_sessions[0]
    assert session.headers["authorization"] == f"Token {KEY}"
    assert session.param("sample_rate") == "16000"
    assert session.param("model") == "nova-3-general"
    assert [m["type"] for m in session.control] == ["KeepAlive", "Finalize", "CloseStream"]
    assert len(session.audio) == len(audio)
    assert session.close_code == 1000


@pytest.mark.asyncio
async def test_deepgram_endpointing_and_utterance_end(cloud: FakeCloud) -> None:
    client = _deepgram_client(cloud)
    query = {**PIPECAT_QUERY, "utterance_end_ms": "1000", "vad_events": "true"}
    types: list[str] = []
    finals: list[ListenV1Results] = []
    async with client.listen.v1.connect(**query) as conn:
        audio = tone(0.5) + silence(1.8)
        for i in range(0, len(audio), 640):
            await conn.send_media(audio[i : i + 640])
        await conn.send_close_stream()
        async for message in conn:
            types.append(str(getattr(message, "type", "")))
            if isinstance(message, ListenV1Results) and message.is_final:
                finals.append(message)
    assert types == ["SpeechStarted", "Results", "Results", "UtteranceEnd", "Metadata"]
    assert finals[0].from_finalize is False and finals[0].speech_final is True
    assert finals[0].channel.alternatives[0].transcript == "what is the weather in paris"


@pytest.mark.asyncio
async def test_deepgram_wrong_key_is_rejected_with_401(cloud: FakeCloud) -> None:
    client = _deepgram_client(cloud, key="nope")
    with pytest.raises(ApiError) as info:
        async with client.listen.v1.connect(**PIPECAT_QUERY):
            pass
    assert info.value.status_code == 401


@pytest.mark.asyncio
async def test_pipecat_deepgram_stt_service_transcribes_on_vad_stop() -> None:
    opts = DeepgramOptions(api_key=KEY, endpoint_silence_ms=5000)
    async with FakeCloud(transcribe="book a table for two", deepgram=opts) as cloud:
        stt = DeepgramSTTService(api_key=KEY, base_url=cloud.deepgram_base_url)
        audio = silence(0.1) + tone(0.6) + silence(0.2)
        frames: list[Any] = [
            InputAudioRawFrame(audio=audio[i : i + 640], sample_rate=16000, num_channels=1)
            for i in range(0, len(audio), 640)
        ]
        frames += [VADUserStoppedSpeakingFrame(), SleepFrame(0.5)]
        down, _ = await run_test(stt, frames_to_send=frames)
        finals = [f.text for f in down if isinstance(f, TranscriptionFrame)]
        interims = [f.text for f in down if isinstance(f, InterimTranscriptionFrame)]
        assert finals == ["book a table for two"]
        assert interims == ["book a table for two"]
        session = cloud.deepgram_sessions[0]
        assert session.param("encoding") == "linear16"
        assert session.param("interim_results") == "true"
        assert [m["type"] for m in session.control][:1] == ["Finalize"]
        assert session.results[-1]["from_finalize"] is True
        assert len(session.audio) == len(audio)
