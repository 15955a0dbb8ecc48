"""Deepgram live transcription (``wss://api.deepgram.com/v1/listen``) over a local websocket.

Transcript policy (what the fake answers, and when):

* Audio must be ``encoding=linear16`` with ``sample_rate`` (what Pipecat's
  ``DeepgramSTTService`` sends); with no ``encoding`` a WAV header is stripped
  from the stream and its rate used. Other encodings are refused with HTTP 400.
  Multichannel audio is reduced to channel 0.
* Every ``frame_ms`` of audio is classified as speech when its RMS level is at
  least ``speech_rms_threshold`` (16-bit scale). Audio is buffered from shortly
  before the first speech frame (``preroll_ms``) into the current utterance.
* An utterance is closed, transcribed with ``transcribe(wav)`` (mono 16-bit WAV at
  the stream rate) and answered with an interim ``Results`` (``is_final=false``,
  only when ``interim_results=true``) followed by a final one (``is_final=true``,
  ``speech_final=true``) when

  - ``Finalize`` arrives (Pipecat sends one when its VAD reports the user stopped
    speaking): ``from_finalize=true``. With no speech buffered the reply is a
    single empty final with ``from_finalize=true, speech_final=false``, as
    Deepgram does when the transcript was already sent;
  - the buffered speech is followed by ``endpointing`` ms of silence (the
    query value; ``endpoint_silence_ms``, default 600, when absent; never when
    ``endpointing=false``): ``from_finalize=false``;
  - ``CloseStream`` (or an empty binary frame) arrives: remaining speech is
    flushed as a final, then ``Metadata`` is sent and the socket closes with 1000.

* Words are spread evenly over the detected speech span.
* ``utterance_end_ms=N``: an ``UtteranceEnd`` follows a non-empty final once N ms of
  audio without speech have been received after its last word.
* ``vad_events=true``: ``SpeechStarted`` at each speech onset.
* ``KeepAlive`` is accepted silently; ``Configure`` answers ``ConfigureSuccess``
  (``ConfigureFailure`` for keyterms on non-nova-3 models); other text gets an
  ``Error`` with ``variant="SchemaError"``. With nothing received for
  ``idle_timeout_s`` the socket is closed with 1011 (Deepgram's NET-0001).
* Authentication: ``Authorization: Token <key>`` (what the SDK sends), ``Bearer
  <key>``, or the ``Sec-WebSocket-Protocol: token, <key>`` form; a wrong key is
  refused at the handshake with HTTP 401.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs

from starlette.responses import JSONResponse
from starlette.websockets import WebSocket

from .audio import Transcriber, pcm_to_wav
from .segmenter import Event, Segmenter, Utterance, words_json

JSON = dict[str, Any]
NET0001 = (
    "Deepgram did not receive audio data or a text message within the timeout window. "
    "See https://dpgr.am/net0001"
)


@dataclass(frozen=True)
class DeepgramOptions:
    """Tunables of the fake Deepgram endpoint (see the module docstring)."""

    api_key: str | None = "test-key"
    endpoint_silence_ms: int = 600
    speech_rms_threshold: float = 300.0
    frame_ms: int = 20
    preroll_ms: int = 300
    idle_timeout_s: float | None = 10.0
    model_version: str = "2024-11-26.0"


@dataclass
class DeepgramSession:
    """Everything seen and sent on one ``/v1/listen`` websocket."""

    params: dict[str, list[str]]
    headers: dict[str, str]
    request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    audio: bytearray = field(default_factory=bytearray)
    control: list[JSON] = field(default_factory=list)
    sent: list[JSON] = field(default_factory=list)
    utterances: list[tuple[bytes, str]] = field(default_factory=list)
    close_code: int | None = None

    def param(self, name: str, default: str | None = None) -> str | None:
        values = self.params.get(name)
        return values[-1] if values else default

    @property
    def results(self) -> list[JSON]:
        return [m for m in self.sent if m.get("type") == "Results"]

    @property
    def final_transcripts(self) -> list[str]:
        return [
            str(m["channel"]["alternatives"][0]["transcript"])
            for m in self.results
            if m.get("is_final")
        ]


class DeepgramListen:
    """The ``/v1/listen`` websocket endpoint."""

    def __init__(
        self, opts: DeepgramOptions, transcribe: Transcriber, sessions: list[DeepgramSession]
    ) -> None:
        self.opts, self.transcribe, self.sessions = opts, transcribe, sessions

    def _authorized(self, ws: WebSocket) -> tuple[bool, str | None]:
        key = self.opts.api_key
        protocols = [p.strip() for p in ws.headers.get("sec-websocket-protocol", "").split(",")]
        if len(protocols) == 2 and protocols[0] in ("token", "bearer"):
            return key is None or protocols[1] == key, protocols[0]
        header = ws.headers.get("authorization", "")
        scheme, _, value = header.partition(" ")
        ok = key is None or (scheme.lower() in ("token", "bearer") and value == key)
        return ok, None

    async def endpoint(self, ws: WebSocket) -> None:
        params = parse_qs(ws.scope.get("query_string", b"").decode(), keep_blank_values=True)
        session = DeepgramSession(params=params, headers=dict(ws.headers))
        self.sessions.append(session)
        ok, subprotocol = self._authorized(ws)
        if not ok:
            body = {"err_code": "INVALID_AUTH", "err_msg": "Invalid credentials.",
                    "request_id": session.request_id}  # fmt: skip
            await ws.send_denial_response(JSONResponse(body, status_code=401))
            return
        encoding = session.param("encoding")
        rate_param = session.param("sample_rate")
        if encoding not in (None, "linear16") or (encoding and not rate_param):
            msg = f"fake Deepgram supports linear16 with sample_rate only (got {encoding!r})"
            body = {"err_code": "Bad Request", "err_msg": msg, "request_id": session.request_id}
            await ws.send_denial_response(JSONResponse(body, status_code=400))
            return
        headers = [(b"dg-request-id", session.request_id.encode())]
        await ws.accept(subprotocol=subprotocol, headers=headers)
        await _Stream(self, ws, session, expect_wav=encoding is None).run()


class _Stream:
    def __init__(
        self, api: DeepgramListen, ws: WebSocket, session: DeepgramSession, expect_wav: bool
    ) -> None:
        self.api, self.ws, self.session, self.expect_wav = api, ws, session, expect_wav
        self.rate = int(session.param("sample_rate") or 16000)
        self.channels = max(1, int(session.param("channels") or 1))
        self.model = session.param("model") or "base"
        self.language = session.param("language")
        self.model_uuid = str(uuid.uuid5(uuid.NAMESPACE_URL, self.model))
        endpointing = session.param("endpointing")
        endpoint_ms: int | None = api.opts.endpoint_silence_ms
        if endpointing == "false":
            endpoint_ms = None
        elif endpointing and endpointing.isdigit():
            endpoint_ms = int(endpointing)
        ue = session.param("utterance_end_ms")
        self.seg = Segmenter(
            api.opts,
            self.rate,
            self.channels,
            endpoint_ms,
            int(ue) if ue and ue.isdigit() else None,
        )
        self.open = True

    async def send(self, message: JSON) -> None:
        self.session.sent.append(message)
        if self.open:
            try:
                await self.ws.send_text(json.dumps(message))
            except Exception:
                self.open = False

    async def close(self, code: int, reason: str = "") -> None:
        self.session.close_code = code
        if self.open:
            self.open = False
            with contextlib.suppress(Exception):
                await self.ws.close(code=code, reason=reason)

    async def run(self) -> None:
        timeout = self.api.opts.idle_timeout_s
        while self.open:
            try:
                message = await asyncio.wait_for(self.ws.receive(), timeout)
            except TimeoutError:
                await self.close(1011, NET0001)
                return
            if message["type"] == "websocket.disconnect":
                self.open = False
                self.session.close_code = int(message.get("code", 1000))
                return
            data: bytes | None = message.get("bytes")
            if data is not None:
                if not data:
                    await self.close_stream()
                    return
                await self.audio(data)
            elif (text := message.get("text")) is not None:
                await self.control(str(text))

    async def audio(self, data: bytes) -> None:
        if self.expect_wav and not self.session.audio and data[:4] == b"RIFF" and len(data) >= 44:
            self.channels = int.from_bytes(data[22:24], "little")
            self.rate = int.from_bytes(data[24:28], "little")
            self.seg = Segmenter(
                self.api.opts, self.rate, self.channels, self.seg.endpoint_ms,
                self.seg.utterance_end_ms,
            )  # fmt: skip
            self.session.audio += data[:44]
            data = data[44:]
        self.session.audio += data
        for event in self.seg.feed(data):
            await self.handle(event)

    async def handle(self, event: Event) -> None:
        if event.kind == "speech_started":
            if self.session.param("vad_events") == "true":
                await self.send({"type": "SpeechStarted", "channel": [0, 1],
                                 "timestamp": round(event.time_s, 3)})  # fmt: skip
        elif event.kind == "utterance_end":
            await self.send({"type": "UtteranceEnd", "channel": [0, 1],
                             "last_word_end": round(event.time_s, 3)})  # fmt: skip
        elif event.utterance is not None:
            await self.utterance(event.utterance, from_finalize=False)

    async def control(self, text: str) -> None:
        try:
            message = json.loads(text)
        except json.JSONDecodeError:
            message = None
        if not isinstance(message, dict):
            await self.schema_error(text)
            return
        self.session.control.append(message)
        kind = message.get("type")
        if kind == "KeepAlive":
            return
        if kind == "Finalize":
            await self.utterance(self.seg.cut(flush=True), from_finalize=True)
        elif kind == "CloseStream":
            await self.close_stream()
        elif kind == "Configure":
            await self.configure(message)
        else:
            await self.schema_error(text)

    async def schema_error(self, text: str) -> None:
        await self.send({"type": "Error", "variant": "SchemaError", "message": text,
                         "description": "Could not parse the client text message."})  # fmt: skip

    async def configure(self, message: JSON) -> None:
        keyterms = message.get("keyterms")
        reply: JSON = {"type": "ConfigureSuccess", "request_id": self.session.request_id}
        if keyterms is not None and "nova-3" not in self.model:
            reply = {"type": "ConfigureFailure", "request_id": self.session.request_id,
                     "code": "CONFIGURE_KEYTERMS_NOT_SUPPORTED",
                     "description": "Keyterms are only supported on Nova-3 models."}  # fmt: skip
        elif keyterms is not None:
            reply["keyterms"] = keyterms
        await self.send(reply)

    async def close_stream(self) -> None:
        utterance = self.seg.cut(flush=True)
        if utterance.speech_start is not None:
            await self.utterance(utterance, from_finalize=False)
        duration = len(self.session.audio) / (2 * self.channels * self.rate)
        await self.send({
            "type": "Metadata",
            "transaction_key": "deprecated",
            "request_id": self.session.request_id,
            "sha256": hashlib.sha256(bytes(self.session.audio)).hexdigest(),
            "created": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "duration": round(duration, 3),
            "channels": self.channels,
            "models": [self.model_uuid],
            "model_info": {self.model_uuid: self.model_info()},
        })  # fmt: skip
        await self.close(1000)

    def model_info(self) -> JSON:
        arch = next((a for a in ("nova-3", "nova-2", "nova") if a in self.model), self.model)
        return {"name": f"general-{arch}", "version": self.api.opts.model_version, "arch": arch}

    async def utterance(self, utt: Utterance, *, from_finalize: bool) -> None:
        text = ""
        if utt.speech_start is not None:
            wav = pcm_to_wav(utt.pcm, self.rate)
            text = (await asyncio.to_thread(self.api.transcribe, wav)).strip()
            self.session.utterances.append((wav, text))
        elif not from_finalize:
            return
        speech_start = (utt.speech_start or utt.start) / self.rate
        speech_end = (utt.speech_end or utt.start) / self.rate
        language = "en" if self.language == "multi" else None
        words = words_json(text, speech_start, speech_end, language)
        start, duration = utt.start / self.rate, len(utt.pcm) / (2 * self.rate)
        if text and self.session.param("interim_results") == "true":
            await self.send(self.results(text, words, start, duration, False, False, False))
        speech_final = utt.speech_start is not None
        await self.send(
            self.results(text, words, start, duration, True, speech_final, from_finalize)
        )
        if words:
            self.seg.utterance_end_due = float(words[-1]["end"])

    def results(
        self,
        text: str,
        words: list[JSON],
        start: float,
        duration: float,
        is_final: bool,
        speech_final: bool,
        from_finalize: bool,
    ) -> JSON:
        alternative: JSON = {
            "transcript": text,
            "confidence": 0.99 if text else 0.0,
            "words": words,
        }
        if self.language == "multi":
            alternative["languages"] = ["en"] if text else []
        return {
            "type": "Results",
            "channel_index": [0, 1],
            "duration": round(duration, 3),
            "start": round(start, 3),
            "is_final": is_final,
            "speech_final": speech_final,
            "channel": {"alternatives": [alternative]},
            "metadata": {
                "request_id": self.session.request_id,
                "model_info": self.model_info(),
                "model_uuid": self.model_uuid,
            },
            "from_finalize": from_finalize,
        }
