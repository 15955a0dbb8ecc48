"""OpenAI ``POST /v1/audio/speech``: streamed raw PCM (or WAV), as OpenAI, Kokoro-FastAPI and
Speaches serve it to ``AsyncOpenAI().audio.speech``.

Opt-in on :class:`tests.fakes.FakeCloud` (``speech=SpeechOptions()``): ``bench/sessions_fakes.py``
adds its own timed route at the same path, and Starlette serves the first match.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import BaseRoute, Route

from .audio import pcm_to_wav, tone
from .openai_api import Provider

SPEECH_RATE = 24000  # OpenAI's ``pcm`` format: 24 kHz, 16-bit little-endian, mono
FORMATS = ("mp3", "opus", "aac", "flac", "wav", "pcm")
Synthesizer = Callable[[str], bytes]
"""Text -> 24 kHz 16-bit mono PCM."""


def tone_synthesizer(seconds_per_char: float = 0.06) -> Synthesizer:
    """A 440 Hz tone as long as the text would take to say."""

    def synthesize(text: str) -> bytes:
        return tone(max(0.2, len(text) * seconds_per_char), SPEECH_RATE, 440.0)

    return synthesize


@dataclass
class SpeechOptions:
    """How the fake speaks: what audio, how soon, how fast."""

    synthesize: Synthesizer = field(default_factory=tone_synthesizer)
    first_audio_s: float = 0.0
    chunk_s: float = 0.040  # bytes are written in pieces this long
    speedup: float = 0.0  # pieces per real-time second; 0 = as fast as the socket takes them


@dataclass
class SpeechCall:
    """One request as received, and the PCM the fake answered with."""

    path: str
    body: dict[str, Any]
    pcm: bytes = b""
    received_s: float = field(default_factory=time.monotonic)  # when the request arrived


class SpeechAPI:
    def __init__(self, provider: Provider, options: SpeechOptions, calls: list[SpeechCall]):
        self.provider, self.options, self.calls = provider, options, calls

    def routes(self) -> list[BaseRoute]:
        return [Route(f"{self.provider.prefix}/audio/speech", self.speech, methods=["POST"])]

    def _invalid(self, body: Any) -> Response | None:
        err = self.provider.error
        if not isinstance(body, dict):
            return err(400, "We could not parse the JSON body of your request.", None)
        for name in ("model", "input", "voice"):
            if not body.get(name):
                return err(400, f"Missing required parameter: '{name}'.", None, name)
        if body.get("response_format", "mp3") not in FORMATS:
            return err(400, f"Invalid value for 'response_format'. Use one of {FORMATS}.", None)
        if body.get("response_format", "mp3") not in ("pcm", "wav"):
            # Compressed formats would need an encoder; no Parley client asks for them.
            return err(400, "this fake serves only response_format pcm or wav", None)
        return None

    async def speech(self, request: Request) -> Response:
        if (denied := self.provider.check_auth(request)) is not None:
            return denied
        try:
            body = json.loads(await request.body())
        except json.JSONDecodeError:
            body = None
        if (invalid := self._invalid(body)) is not None:
            return invalid
        call = SpeechCall(request.url.path, body)
        self.calls.append(call)
        call.pcm = await asyncio.to_thread(self.options.synthesize, str(body["input"]))
        if body["response_format"] == "wav":
            return Response(pcm_to_wav(call.pcm, SPEECH_RATE), media_type="audio/wav")
        return StreamingResponse(self._stream(call.pcm), media_type="audio/pcm")

    async def _stream(self, pcm: bytes) -> AsyncIterator[bytes]:
        opts = self.options
        if opts.first_audio_s > 0:
            await asyncio.sleep(opts.first_audio_s)
        step = int(SPEECH_RATE * opts.chunk_s) * 2
        start = time.monotonic()
        for i, offset in enumerate(range(0, len(pcm), step)):
            if opts.speedup > 0:
                wait = start + i * opts.chunk_s / opts.speedup - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
            yield pcm[offset : offset + step]
