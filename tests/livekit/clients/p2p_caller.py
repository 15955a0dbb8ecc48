"""A browser-like caller for the embedded peer-to-peer mode, with aiortc (runs inside the test's
network namespace, prints JSON).

Does what the tutor page does: asks the API for a web session, makes a complete offer (microphone
track + a data channel, ICE gathered first), POSTs it to the session's ``offer_url``, applies the
answer, sends RTVI ``client-ready`` and keep-alive pings, records the agent's audio and every
RTVI message. Then it waits for the greeting, speaks the question WAV in real time, records the
reply and hangs up.

    PARLEY_TEST_API_KEY=pk_... python -m tests.livekit.clients.p2p_caller
        --api http://10.213.0.1:8001 --agent-id UUID --wav q.wav --out reply.wav

``--no-answer``: POST an offer without ICE candidates and never apply the answer (a peer that
never reaches "connecting"), then exit.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import fractions
import json
import os
import re
import sys
import time
import wave
from pathlib import Path
from typing import Any

import av
import httpx
import numpy as np
from aiortc import MediaStreamTrack, RTCPeerConnection, RTCSessionDescription

RATE = 48000
FRAME = RATE // 50  # 20 ms
VOICED_DBFS = -45.0


def log(*parts: object) -> None:
    print(*parts, file=sys.stderr, flush=True)


def dbfs(samples: np.ndarray) -> float:
    if samples.size == 0:
        return -120.0
    rms = float(np.sqrt(np.mean((samples.astype(np.float64) / 32768.0) ** 2)))
    return 20 * float(np.log10(max(rms, 1e-6)))


def read_wav_48k(path: Path) -> np.ndarray:
    with wave.open(str(path)) as w:
        rate, ch = w.getframerate(), w.getnchannels()
        pcm = np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16)
    if ch > 1:
        pcm = pcm.reshape(-1, ch).mean(axis=1).astype(np.int16)
    if rate != RATE:
        x = np.arange(0, len(pcm), rate / RATE)
        pcm = np.interp(x, np.arange(len(pcm)), pcm).astype(np.int16)
    return pcm


class Microphone(MediaStreamTrack):
    """Real-time 20 ms frames: whatever was queued with ``say``, silence otherwise."""

    kind = "audio"

    def __init__(self) -> None:
        super().__init__()
        self._pending = np.zeros(0, dtype=np.int16)
        self._pts = 0
        self._start: float | None = None

    def say(self, pcm: np.ndarray) -> float:
        """Queue speech; returns when (monotonic) its last sample will have been sent."""
        self._pending = np.concatenate([self._pending, pcm])
        return time.monotonic() + len(self._pending) / RATE

    async def recv(self) -> av.AudioFrame:
        if self._start is None:
            self._start = time.monotonic()
        await asyncio.sleep(max(0.0, self._start + self._pts / RATE - time.monotonic()))
        chunk, self._pending = self._pending[:FRAME], self._pending[FRAME:]
        if len(chunk) < FRAME:
            chunk = np.concatenate([chunk, np.zeros(FRAME - len(chunk), dtype=np.int16)])
        frame = av.AudioFrame.from_ndarray(chunk.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = RATE
        frame.pts = self._pts
        frame.time_base = fractions.Fraction(1, RATE)
        self._pts += FRAME
        return frame


class Recorder:
    """The agent's audio (48 kHz mono) with arrival times."""

    def __init__(self) -> None:
        self.frames: list[tuple[float, np.ndarray]] = []
        self._resampler = av.AudioResampler(format="s16", layout="mono", rate=RATE)

    async def consume(self, track: MediaStreamTrack) -> None:
        while True:
            try:
                frame = await track.recv()
            except Exception:  # MediaStreamError: the track ended
                return
            for f in self._resampler.resample(frame):
                self.frames.append((time.monotonic(), f.to_ndarray().reshape(-1).copy()))

    def first_voiced_after(self, t: float) -> float | None:
        return next((at for at, p in self.frames if at > t and dbfs(p) > VOICED_DBFS), None)

    def last_voiced(self) -> float | None:
        voiced = [at for at, p in self.frames if dbfs(p) > VOICED_DBFS]
        return voiced[-1] if voiced else None

    async def wait_quiet(self, after: float, quiet_secs: float, limit_secs: float) -> bool:
        """Wait until the agent spoke after ``after`` and then was quiet for ``quiet_secs``."""
        deadline = time.monotonic() + limit_secs
        while time.monotonic() < deadline:
            start, last = self.first_voiced_after(after), self.last_voiced()
            if start is not None and last is not None and time.monotonic() - last > quiet_secs:
                return True
            await asyncio.sleep(0.05)
        return False

    def write(self, path: Path, since: float) -> None:
        pcm = [p for at, p in self.frames if at >= since]
        data = np.concatenate(pcm) if pcm else np.zeros(0, dtype=np.int16)
        with wave.open(str(path), "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(RATE)
            w.writeframes(data.tobytes())


def candidate_addresses(sdp: str) -> list[str]:
    return sorted(set(re.findall(r"^a=candidate:\S+ \d+ \S+ \d+ (\S+) \d+", sdp, re.M)))


async def main(args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {}
    headers = {"Authorization": f"Bearer {os.environ['PARLEY_TEST_API_KEY']}"}
    async with httpx.AsyncClient(base_url=args.api, timeout=60, headers=headers) as http:
        r = await http.post("/v1/sessions/web", json={"agent_id": args.agent_id})
        r.raise_for_status()
        session = r.json()
        out["session"] = session
        pc = RTCPeerConnection()  # no ICE servers: host candidates only
        mic = Microphone()
        pc.addTrack(mic)
        channel = pc.createDataChannel("rtvi")
        rec = Recorder()
        messages: list[dict[str, Any]] = []
        tasks: list[asyncio.Task[Any]] = []
        connected = asyncio.Event()

        @pc.on("track")
        def _track(track: MediaStreamTrack) -> None:
            if track.kind == "audio":
                tasks.append(asyncio.create_task(rec.consume(track)))

        @pc.on("connectionstatechange")
        def _state() -> None:
            log("connection state", pc.connectionState)
            if pc.connectionState == "connected":
                connected.set()

        @channel.on("open")
        def _open() -> None:
            ready = {"version": "2.2.0", "about": {"library": "aiortc-test"}}
            msg = {"label": "rtvi-ai", "type": "client-ready", "id": "c1", "data": ready}
            channel.send(json.dumps(msg))

            async def ping() -> None:
                while channel.readyState == "open":
                    channel.send(f"ping: {time.time()}")
                    await asyncio.sleep(1.0)

            tasks.append(asyncio.create_task(ping()))

        @channel.on("message")
        def _message(raw: Any) -> None:
            with contextlib.suppress(TypeError, ValueError):
                messages.append(json.loads(raw))

        await pc.setLocalDescription(await pc.createOffer())  # gathers every candidate
        offer = pc.localDescription.sdp
        if args.no_answer:
            offer = "".join(line for line in offer.splitlines(True) if "candidate" not in line)
        r = await http.post(session["offer_url"], json={"sdp": offer, "type": "offer"})
        out["offer_status"] = r.status_code
        r.raise_for_status()
        answer = r.json()
        out["pc_id"] = answer["pc_id"]
        out["candidates"] = {
            "offer": candidate_addresses(offer),
            "answer": candidate_addresses(answer["sdp"]),
        }
        if args.no_answer:
            await pc.close()
            return out
        began = time.monotonic()
        await pc.setRemoteDescription(RTCSessionDescription(answer["sdp"], answer["type"]))
        await asyncio.wait_for(connected.wait(), 20)
        out["connect_ms"] = round((time.monotonic() - began) * 1000)
        nominated = pc.sctp.transport.transport._connection._nominated  # aioice's selected pairs
        out["selected"] = [f"{p.local_addr[0]} -> {p.remote_addr[0]}" for p in nominated.values()]
        if args.expect_greeting:
            await rec.wait_quiet(began, 0.8, args.greeting_wait)
            greet = rec.first_voiced_after(began)
            out["greeting_ms"] = None if greet is None else round((greet - began) * 1000)
        asked = time.monotonic()
        spoke_until = mic.say(read_wav_48k(Path(args.wav)))
        await asyncio.sleep(max(0.0, spoke_until - time.monotonic()))
        out["reply_heard"] = await rec.wait_quiet(spoke_until, 1.2, args.reply_wait)
        reply = rec.first_voiced_after(spoke_until)
        out["voice_to_voice_ms"] = None if reply is None else round((reply - spoke_until) * 1000)
        # The latency server-message follows the reply's turn record: give it a moment.
        await asyncio.sleep(0.5)
        rec.write(Path(args.out), asked)
        out["frames"] = len(rec.frames)
        out["rtvi"] = messages
        if args.hang_up:
            await pc.close()
        for t in tasks:
            t.cancel()
    return out


def parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser()
    p.add_argument("--api", required=True)
    p.add_argument("--agent-id", required=True)
    p.add_argument("--wav")
    p.add_argument("--out")
    p.add_argument("--expect-greeting", action="store_true")
    p.add_argument("--greeting-wait", type=float, default=30.0)
    p.add_argument("--reply-wait", type=float, default=30.0)
    p.add_argument("--hang-up", action="store_true")
    p.add_argument("--no-answer", action="store_true")
    return p.parse_args(argv)


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main(parse(sys.argv[1:])))), flush=True)
