"""OpenAI-compatible TTS (``POST /v1/audio/speech``) through Pipecat's OpenAITTSService.

Works with OpenAI itself and with servers that copy its speech endpoint (Kokoro-FastAPI,
Speaches, vLLM-style servers). Audio is requested as raw 24 kHz 16-bit mono PCM and pushed as
soon as each 40 ms arrives.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Any

import openai
from pipecat.frames.frames import ErrorFrame, Frame, TTSAudioRawFrame
from pipecat.services.openai.tts import OpenAITTSService, OpenAITTSSettings
from pipecat.utils.tracing.service_decorators import traced_tts

from parley.config import AgentConfig
from parley.egress import agent_http_client
from parley.errors import ConfigError
from parley.settings import Settings
from pipelines.services.openai import api_key

SAMPLE_RATE = 24000  # what ``response_format: pcm`` means in OpenAI's API
FRAME_S = 0.040
DEFAULT_MODEL = "gpt-4o-mini-tts"
DEFAULT_VOICE = "alloy"
OPENAI_HOST = "api.openai.com"


class OpenAICompatTTSService(OpenAITTSService):
    """Pipecat's OpenAI TTS, streaming from the first 40 ms and accepting any voice name."""

    @property
    def chunk_size(self) -> int:
        # Pipecat's default waits for 0.5 s of audio before the first frame: that is latency.
        return int(self.sample_rate * FRAME_S) * 2

    @traced_tts
    async def run_tts(self, text: str, context_id: str) -> AsyncGenerator[Frame, None]:
        # Pipecat's own run_tts refuses voices outside OpenAI's list (Kokoro's "af_bella", ...);
        # the server is the judge of what it serves.
        s: OpenAITTSSettings = self._settings
        params: dict[str, Any] = {"input": text, "model": s.model, "voice": s.voice}
        if s.instructions:
            params["instructions"] = s.instructions
        if s.speed:
            params["speed"] = s.speed
        speech = self._client.audio.speech.with_streaming_response
        try:
            async with speech.create(**params, response_format="pcm") as r:
                await self.start_tts_usage_metrics(text)
                async for chunk in r.iter_bytes(self.chunk_size):
                    if chunk:
                        await self.stop_ttfb_metrics()
                        yield TTSAudioRawFrame(chunk, self.sample_rate, 1, context_id=context_id)
        except openai.APIStatusError as e:
            # The body may echo a (masked) key on 401; the status alone says what to fix.
            detail = "check OPENAI_API_KEY" if e.status_code in (401, 403) else e.message
            yield ErrorFrame(error=f"TTS server answered {e.status_code} ({detail})")
        except openai.APIError as e:
            yield ErrorFrame(error=f"TTS server unreachable at {self._client.base_url}: {e}")


def make_tts(agent: AgentConfig, settings: Settings, base_url: str | None) -> OpenAITTSService:
    tts = agent.tts
    if not tts.model and base_url and OPENAI_HOST not in base_url:
        raise ConfigError(
            "tts.model is required with an OpenAI-compatible base_url "
            "(fix: set tts.model to a model the server serves, e.g. kokoro for Kokoro-FastAPI)"
        )
    speed = tts.options.get("speed")
    return OpenAICompatTTSService(
        # A base_url the agent set goes through the egress policy; the operator's does not.
        http_client=agent_http_client(agent, settings) if tts.base_url else None,
        api_key=api_key(agent, "tts", settings),
        base_url=base_url,
        sample_rate=SAMPLE_RATE,
        settings=OpenAITTSService.Settings(
            model=tts.model or DEFAULT_MODEL,
            voice=tts.voice or DEFAULT_VOICE,
            instructions=tts.options.get("instructions"),
            speed=float(speed) if speed is not None else None,
        ),
    )
