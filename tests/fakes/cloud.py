"""``FakeCloud``: one local uvicorn server speaking OpenAI, Groq and Deepgram wire protocols.

Point Pipecat's real service classes at it::

    with FakeCloud(Script(rules=[("weather", ToolCallReply("get_weather", {"city": "Paris"}))]),
                   transcribe="what's the weather in paris") as cloud:
        llm = OpenAILLMService(api_key=cloud.api_key, base_url=cloud.openai_base_url, ...)
        groq_llm = GroqLLMService(api_key=cloud.api_key, base_url=cloud.groq_base_url)
        groq_stt = GroqSTTService(api_key=cloud.api_key, base_url=cloud.groq_base_url)
        deepgram = DeepgramSTTService(api_key=cloud.api_key, base_url=cloud.deepgram_base_url)

Routes (all on ``127.0.0.1:<port>``):

* ``POST /v1/chat/completions``, ``GET /v1/models``, ``POST /v1/audio/transcriptions``
  (OpenAI-compatible: OpenAI, Ollama, vLLM ...);
* the same under ``/openai/v1`` with Groq's flavour (``x_groq`` ids, Groq errors);
* websocket ``/v1/listen`` (Deepgram live STT, see :mod:`tests.fakes.deepgram_api`);
* ``POST /v1/audio/speech`` (OpenAI-compatible TTS) when ``speech=SpeechOptions(...)`` is given
  (see :mod:`tests.fakes.speech_api`).
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from types import TracebackType
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.routing import BaseRoute, WebSocketRoute

from .audio import Transcriber, fixed_transcriber
from .deepgram_api import DeepgramListen, DeepgramOptions, DeepgramSession
from .openai_api import OpenAICompatAPI, Provider, TranscriptionCall
from .script import Script
from .speech_api import SpeechAPI, SpeechCall, SpeechOptions


class FakeCloud:
    """Starts one loopback uvicorn server in a background thread (sync or async context manager).

    Args:
        script: The scripted LLM (a default ``Script()`` answering "OK." if omitted).
        transcribe: WAV bytes -> transcript, used by the Whisper and Deepgram
            endpoints; a ``str`` means "always this text".
        api_key: The key every provider expects (``Bearer`` for OpenAI/Groq, ``Token``
            for Deepgram); ``None`` accepts any key. ``openai_api_key``,
            ``groq_api_key`` and ``deepgram`` (``DeepgramOptions.api_key``) override it.
        deepgram: Deepgram endpoint tunables (endpointing, VAD threshold, idle timeout).
        speech: Serve OpenAI's ``/v1/audio/speech`` with this audio and pacing; each
            request lands in ``speech_calls``.
    """

    def __init__(
        self,
        script: Script | None = None,
        *,
        transcribe: Transcriber | str = "hello world",
        api_key: str | None = "test-key",
        openai_api_key: str | None = None,
        groq_api_key: str | None = None,
        deepgram: DeepgramOptions | None = None,
        speech: SpeechOptions | None = None,
    ) -> None:
        self.script = script if script is not None else Script()
        self.api_key = api_key
        self.transcribe = (
            fixed_transcriber(transcribe) if isinstance(transcribe, str) else transcribe
        )
        self.transcriptions: list[TranscriptionCall] = []
        self.deepgram_sessions: list[DeepgramSession] = []
        self.deepgram_options = deepgram or DeepgramOptions(api_key=api_key)
        self.speech = speech
        self.speech_calls: list[SpeechCall] = []
        self._providers = [
            Provider("/v1", "openai", openai_api_key or api_key, self.transcriptions),
            Provider("/openai/v1", "groq", groq_api_key or api_key, self.transcriptions),
        ]
        self.app = Starlette(routes=self._routes())
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._port: int | None = None

    def _routes(self) -> list[BaseRoute]:
        routes: list[BaseRoute] = []
        for provider in self._providers:
            routes += OpenAICompatAPI(provider, self.script, self.transcribe).routes()
        listen = DeepgramListen(self.deepgram_options, self.transcribe, self.deepgram_sessions)
        routes.append(WebSocketRoute("/v1/listen", listen.endpoint))
        if self.speech is not None:
            routes += SpeechAPI(self._providers[0], self.speech, self.speech_calls).routes()
        return routes

    # -- addresses ---------------------------------------------------------------------------

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("FakeCloud is not running")
        return self._port

    @property
    def http_url(self) -> str:
        """``http://127.0.0.1:PORT`` (the ``groq`` SDK's ``base_url``: it adds ``/openai/v1``)."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def openai_base_url(self) -> str:
        """``http://127.0.0.1:PORT/v1`` for ``AsyncOpenAI`` / ``OpenAILLMService``."""
        return f"{self.http_url}/v1"

    @property
    def groq_base_url(self) -> str:
        """``http://127.0.0.1:PORT/openai/v1`` for ``GroqLLMService`` / ``GroqSTTService``."""
        return f"{self.http_url}/openai/v1"

    @property
    def groq_sdk_base_url(self) -> str:
        return self.http_url

    @property
    def deepgram_base_url(self) -> str:
        """``ws://127.0.0.1:PORT`` for ``DeepgramSTTService(base_url=...)``.

        Pipecat derives ``ws://`` + ``http://`` from it (``_derive_deepgram_urls``)
        and the SDK appends ``/v1/listen``.
        """
        return f"ws://127.0.0.1:{self.port}"

    @property
    def requests(self) -> list[dict[str, Any]]:
        """Every chat-completion request body received (same list as ``script.requests``)."""
        return self.script.requests

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self, timeout_s: float = 10.0, *, port: int = 0) -> FakeCloud:
        if self._server is not None:
            return self
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", port))
        self._port = int(sock.getsockname()[1])
        config = uvicorn.Config(
            self.app,
            log_level="warning",
            lifespan="off",
            ws="websockets-sansio",
            timeout_graceful_shutdown=2,
        )
        server = uvicorn.Server(config)
        thread = threading.Thread(
            target=server.run, kwargs={"sockets": [sock]}, name="fake-cloud", daemon=True
        )
        self._server, self._thread = server, thread
        thread.start()
        deadline = time.monotonic() + timeout_s
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                sock.close()
                raise RuntimeError("FakeCloud server failed to start")
            time.sleep(0.01)
        return self  # uvicorn owns ``sock`` now and closes it on shutdown

    def stop(self) -> None:
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is not None:
            server.should_exit = True
        if thread is not None:
            thread.join(timeout=10)
        self._port = None

    def __enter__(self) -> FakeCloud:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    async def __aenter__(self) -> FakeCloud:
        return await asyncio.to_thread(self.start)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await asyncio.to_thread(self.stop)
