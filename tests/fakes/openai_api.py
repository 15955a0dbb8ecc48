"""OpenAI-compatible HTTP endpoints: chat completions, models, audio transcriptions.

Mounted twice by :mod:`tests.fakes.cloud`: under ``/v1`` (generic OpenAI-compatible
servers such as OpenAI, Ollama, vLLM) and under ``/openai/v1`` (Groq). Responses
follow each provider's wire format, including their error JSON.
"""

from __future__ import annotations

import asyncio
import json
import math
import re
import uuid
import wave
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import BaseRoute, Route

from .audio import Transcriber, wav_duration_s
from .script import (
    JSON,
    Script,
    completion_json,
    count_prompt_tokens,
    new_completion_id,
    stream_chunks,
)


@dataclass
class TranscriptionCall:
    """One ``POST .../audio/transcriptions`` request as received."""

    path: str
    fields: dict[str, str]
    filename: str
    content_type: str
    wav: bytes
    text: str = ""


@dataclass
class Provider:
    """Per-mount behaviour: URL prefix, expected key, and provider-specific extras."""

    prefix: str
    name: str  # "openai" or "groq"
    api_key: str | None
    transcriptions: list[TranscriptionCall] = field(default_factory=list)

    def error(
        self, status: int, message: str, code: str | None, param: str | None = None
    ) -> Response:
        err_type = "invalid_request_error"
        body: JSON = {"error": {"message": message, "type": err_type, "param": param, "code": code}}
        return JSONResponse(body, status_code=status)

    def check_auth(self, request: Request) -> Response | None:
        if self.api_key is None:
            return None
        header = request.headers.get("authorization", "")
        if not header:
            return self.error(
                401,
                "You didn't provide an API key. You need to provide your API key in an "
                "Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
                None,
            )
        if header != f"Bearer {self.api_key}":
            if self.name == "groq":
                return self.error(401, "Invalid API Key", "invalid_api_key")
            shown = header.removeprefix("Bearer ")
            return self.error(
                401,
                f"Incorrect API key provided: {shown[:3]}***{shown[-4:]}. You can find your "
                "API key at https://platform.openai.com/account/api-keys.",
                "invalid_api_key",
            )
        return None

    def extra(self) -> JSON:
        """Groq tags responses with ``x_groq.id``; OpenAI adds nothing."""
        return {"x_groq": {"id": f"req_{uuid.uuid4().hex[:26]}"}} if self.name == "groq" else {}


def parse_multipart(content_type: str, body: bytes) -> list[tuple[dict[str, str], bytes]]:
    """Split a ``multipart/form-data`` body into ``(headers, payload)`` parts."""
    match = re.search(r'boundary="?([^";]+)"?', content_type)
    if match is None:
        raise ValueError("multipart body without boundary")
    delimiter = b"--" + match.group(1).encode("latin-1")
    parts: list[tuple[dict[str, str], bytes]] = []
    for raw in body.split(delimiter)[1:]:
        if raw.startswith(b"--"):
            break
        raw = raw.removeprefix(b"\r\n").removesuffix(b"\r\n")
        head, _, payload = raw.partition(b"\r\n\r\n")
        headers: dict[str, str] = {}
        for line in head.decode("utf-8", "replace").split("\r\n"):
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        parts.append((headers, payload))
    return parts


def _disposition_param(disposition: str, key: str) -> str | None:
    match = re.search(rf'(?:^|;)\s*{key}="([^"]*)"', disposition)
    return match.group(1) if match else None


def _srt_time(seconds: float, sep: str) -> str:
    ms = round(seconds * 1000)
    return f"{ms // 3600000:02d}:{ms // 60000 % 60:02d}:{ms // 1000 % 60:02d}{sep}{ms % 1000:03d}"


def _body(request_json: object) -> JSON | None:
    return request_json if isinstance(request_json, dict) else None


class OpenAICompatAPI:
    """The routes of one OpenAI-compatible mount."""

    def __init__(self, provider: Provider, script: Script, transcribe: Transcriber) -> None:
        self.provider = provider
        self.script = script
        self.transcribe = transcribe

    def routes(self) -> list[BaseRoute]:
        p = self.provider.prefix
        return [
            Route(f"{p}/chat/completions", self.chat_completions, methods=["POST"]),
            Route(f"{p}/models", self.models, methods=["GET"]),
            Route(f"{p}/audio/transcriptions", self.transcriptions, methods=["POST"]),
        ]

    async def models(self, request: Request) -> Response:
        if (denied := self.provider.check_auth(request)) is not None:
            return denied
        models = ["fake-model", "openai/gpt-oss-120b", "whisper-large-v3-turbo", "whisper-1"]
        data = [
            {"id": m, "object": "model", "created": 1700000000, "owned_by": "fake-cloud"}
            for m in models
        ]
        return JSONResponse({"object": "list", "data": data})

    async def chat_completions(self, request: Request) -> Response:
        if (denied := self.provider.check_auth(request)) is not None:
            return denied
        try:
            body = _body(json.loads(await request.body()))
        except json.JSONDecodeError:
            body = None
        if body is None:
            return self.provider.error(
                400, "We could not parse the JSON body of your request.", None
            )
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            return self.provider.error(
                400, "'messages' must contain at least one message.", None, "messages"
            )
        if not isinstance(body.get("model"), str):
            return self.provider.error(400, "you must provide a model parameter", None, "model")

        reply = self.script.respond(body)
        model = str(body["model"])
        completion_id = new_completion_id()
        prompt_tokens = count_prompt_tokens(body)
        extra = self.provider.extra()
        if not body.get("stream"):
            if self.script.first_token_delay_s > 0:
                await asyncio.sleep(self.script.first_token_delay_s)
            return JSONResponse(
                completion_json(
                    reply,
                    model=model,
                    completion_id=completion_id,
                    prompt_tokens=prompt_tokens,
                    extra=extra,
                )
            )

        options = body.get("stream_options")
        include_usage = isinstance(options, dict) and bool(options.get("include_usage"))
        chunks = stream_chunks(
            reply,
            model=model,
            completion_id=completion_id,
            include_usage=include_usage,
            prompt_tokens=prompt_tokens,
            extra=extra,
        )
        first_delay, chunk_delay = self.script.first_token_delay_s, self.script.chunk_delay_s

        async def events() -> AsyncIterator[bytes]:
            for i, chunk in enumerate(chunks):
                delay = first_delay if i == 0 else chunk_delay
                if delay > 0:
                    await asyncio.sleep(delay)
                yield f"data: {json.dumps(chunk)}\n\n".encode()
            yield b"data: [DONE]\n\n"

        headers = {"Cache-Control": "no-cache", "X-Request-Id": f"req_{uuid.uuid4().hex}"}
        return StreamingResponse(events(), media_type="text/event-stream", headers=headers)

    async def transcriptions(self, request: Request) -> Response:
        if (denied := self.provider.check_auth(request)) is not None:
            return denied
        content_type = request.headers.get("content-type", "")
        if not content_type.startswith("multipart/form-data"):
            return self.provider.error(
                400, "request Content-Type must be multipart/form-data", None
            )
        try:
            parts = parse_multipart(content_type, await request.body())
        except ValueError as e:
            return self.provider.error(400, str(e), None)

        fields: dict[str, str] = {}
        file_part: tuple[str, str, bytes] | None = None
        for headers, payload in parts:
            disposition = headers.get("content-disposition", "")
            name = _disposition_param(disposition, "name")
            filename = _disposition_param(disposition, "filename")
            if name == "file" and filename is not None:
                file_part = (filename, headers.get("content-type", ""), payload)
            elif name is not None:
                fields[name] = payload.decode("utf-8", "replace")
        if file_part is None:
            return self.provider.error(400, "file must be provided", None, "file")
        if "model" not in fields:
            return self.provider.error(400, "you must provide a model parameter", None, "model")

        filename, file_type, wav = file_part
        call = TranscriptionCall(request.url.path, fields, filename, file_type, wav)
        self.provider.transcriptions.append(call)
        try:
            duration = wav_duration_s(wav)
        except (wave.Error, EOFError):
            return self.provider.error(
                400, "could not process file - is it a valid media file?", None, "file"
            )
        call.text = await asyncio.to_thread(self.transcribe, wav)
        return self._transcription_response(call.text, duration, fields)

    def _transcription_response(
        self, text: str, duration: float, fields: dict[str, str]
    ) -> Response:
        fmt = fields.get("response_format", "json")
        if fmt == "json":
            body: JSON = {"text": text, **self.provider.extra()}
            if self.provider.name == "openai":
                body["usage"] = {"type": "duration", "seconds": math.ceil(duration)}
            return JSONResponse(body)
        if fmt == "verbose_json":
            segment: dict[str, Any] = {
                "id": 0,
                "seek": 0,
                "start": 0.0,
                "end": round(duration, 2),
                "text": f" {text}",
                "tokens": [50365 + i for i in range(len(text.split()))],
                "temperature": float(fields.get("temperature", "0") or 0),
                "avg_logprob": -0.12,
                "compression_ratio": 1.0,
                "no_speech_prob": 0.01,
            }
            verbose: JSON = {
                "task": "transcribe",
                "language": fields.get("language", "english"),
                "duration": round(duration, 2),
                "text": text,
                "segments": [segment],
                **self.provider.extra(),
            }
            return JSONResponse(verbose)
        if fmt == "text":
            return PlainTextResponse(f"{text}\n")
        if fmt in ("srt", "vtt"):
            sep = "," if fmt == "srt" else "."
            cue = f"{_srt_time(0.0, sep)} --> {_srt_time(duration, sep)}\n{text}\n"
            doc = f"1\n{cue}\n" if fmt == "srt" else f"WEBVTT\n\n{cue}\n"
            return PlainTextResponse(doc)
        return self.provider.error(
            400,
            f"response_format must be one of json, verbose_json, text, srt, vtt; got {fmt}",
            None,
            "response_format",
        )
