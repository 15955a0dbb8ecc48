"""Simulated providers for ``bench/sessions.py``: one local HTTP server, in its own process.

Both workers reach the same fixed-latency providers over their real client libraries:

* STT: OpenAI/Groq Whisper protocol (``/v1`` and ``/openai/v1`` ``audio/transcriptions``):
  the transcript comes ``STT_S`` after the upload (the upload happens at end of speech);
* LLM: OpenAI chat completions, streamed; first token after ``LLM_FIRST_TOKEN_S``, then one
  word every ``LLM_WORD_S``;
* TTS: OpenAI ``/v1/audio/speech`` with ``response_format=pcm`` (24 kHz s16le); first audio
  ``TTS_FIRST_AUDIO_S`` after the request, then 40 ms chunks at twice real time (cloud TTS
  streams faster than playback). The audio is a steady 440 Hz tone, so any silent hole the
  caller hears inside a reply is an underrun, not a pause in the "speech".

STT and LLM are ``tests.fakes.FakeCloud`` (the same fakes the test suite uses); the speech route
is added here. Run: ``python bench/sessions_fakes.py --port 9300`` (prints ``READY`` when up).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import signal
import sys
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
from starlette.requests import Request  # noqa: E402
from starlette.responses import Response, StreamingResponse  # noqa: E402
from starlette.routing import Route  # noqa: E402

from tests.fakes import FakeCloud, Script  # noqa: E402

STT_S = 0.150
LLM_FIRST_TOKEN_S = 0.250
LLM_WORD_S = 0.020
TTS_FIRST_AUDIO_S = 0.120
TTS_RATE = 24000
TTS_CHUNK_S = 0.040
TTS_SPEEDUP = 2.0  # audio delivered at twice real time after the first chunk
SECONDS_PER_CHAR = 0.065  # ~15 characters per second of speech
TONE_HZ = 440.0
TONE_AMPLITUDE = 8000  # about -12 dBFS

QUESTION = "What are your opening hours on Saturday?"
ANSWER = "We are open from nine to one on Saturday. See you soon."


def tone_pcm(seconds: float, rate: int = TTS_RATE) -> bytes:
    n = int(seconds * rate)
    t = np.arange(n, dtype=np.float64) / rate
    return (TONE_AMPLITUDE * np.sin(2 * math.pi * TONE_HZ * t)).astype("<i2").tobytes()


async def speech(request: Request) -> Response:
    body = json.loads(await request.body())
    text = str(body.get("input", ""))
    pcm = tone_pcm(max(0.3, len(text) * SECONDS_PER_CHAR))
    chunk = int(TTS_RATE * TTS_CHUNK_S) * 2

    async def audio() -> AsyncIterator[bytes]:
        await asyncio.sleep(TTS_FIRST_AUDIO_S)
        start = time.monotonic()
        for i, offset in enumerate(range(0, len(pcm), chunk)):
            due = start + i * TTS_CHUNK_S / TTS_SPEEDUP
            if (wait := due - time.monotonic()) > 0:
                await asyncio.sleep(wait)
            yield pcm[offset : offset + chunk]

    return StreamingResponse(audio(), media_type="audio/pcm")


def transcribe(_wav: bytes) -> str:
    time.sleep(STT_S)  # runs in a worker thread of the fake server
    return QUESTION


def make_cloud() -> FakeCloud:
    script = Script(default=ANSWER, first_token_delay_s=LLM_FIRST_TOKEN_S, chunk_delay_s=LLM_WORD_S)
    # api_key=None: both workers may send any key; nothing here is a secret.
    cloud = FakeCloud(script, transcribe=transcribe, api_key=None)
    cloud.app.router.routes.append(Route("/v1/audio/speech", speech, methods=["POST"]))
    return cloud


def serve(port: int) -> None:
    """Serve on 127.0.0.1:``port`` until SIGTERM/SIGINT."""
    cloud = make_cloud()
    # FakeCloud picks a free port; the bench wants a known one, so bind it ourselves.
    import socket

    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    config = uvicorn.Config(
        cloud.app, log_level="warning", lifespan="off", timeout_graceful_shutdown=1
    )
    server = uvicorn.Server(config)
    stop = threading.Event()

    def _stop(*_: object) -> None:
        server.should_exit = True
        stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.01)
    print("READY", flush=True)
    thread.join()


def main() -> None:
    ap = argparse.ArgumentParser(description="simulated STT/LLM/TTS providers")
    ap.add_argument("--port", type=int, required=True)
    serve(ap.parse_args().port)


if __name__ == "__main__":
    main()
