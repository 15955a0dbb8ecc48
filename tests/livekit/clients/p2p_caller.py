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
from pathlib import Path
from typing import Any

import av
import httpx
import numpy as np
from aiortc import MediaStreamTrack, RTCPeerConnection, RTCSessionDescription

from tests.livekit.clients.common import (
    FRAME,
    RATE,
    Recorder,
    add_conversation_args,
    emit,
    log,
    read_wav_48k,
)


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


class TrackRecorder(Recorder):
    """The agent's audio from an aiortc track, resampled to 48 kHz mono."""

    def __init__(self) -> None:
        super().__init__()
        self._resampler = av.AudioResampler(format="s16", layout="mono", rate=RATE)

    async def consume(self, track: MediaStreamTrack) -> None:
        while True:
            try:
                frame = await track.recv()
            except Exception:  # MediaStreamError: the track ended
                return
            for f in self._resampler.resample(frame):
                self.add(f.to_ndarray().reshape(-1).copy())


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
        rec = TrackRecorder()
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
            _, out["greeting_ms"] = await rec.heard_after(began, 0.8, args.greeting_wait)
        asked = time.monotonic()
        spoke_until = mic.say(read_wav_48k(Path(args.wav)))
        await asyncio.sleep(max(0.0, spoke_until - time.monotonic()))
        heard = await rec.heard_after(spoke_until, 1.2, args.reply_wait)
        out["reply_heard"], out["voice_to_voice_ms"] = heard
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
    add_conversation_args(p, required=False, greeting_wait=30.0)
    p.add_argument("--no-answer", action="store_true")
    return p.parse_args(argv)


if __name__ == "__main__":
    emit(asyncio.run(main(parse(sys.argv[1:]))))
