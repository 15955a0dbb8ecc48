"""A caller in a LiveKit room (runs inside the test's network namespace, prints JSON).

Joins with a token (or asks the API for a web session first), records every agent audio frame,
waits for the greeting to finish, speaks the question WAV in real time, and records the reply.
Timings are wall-clock at this client: greeting latency (join → first agent audio) and
voice-to-voice (end of the question → first reply audio).

    python -m tests.livekit.clients.room_caller --api http://10.213.0.1:8000 --key pk_...
        --agent-id UUID --wav q.wav --out reply.wav
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
import wave
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from livekit import rtc

RATE = 48000
FRAME = RATE // 50  # 20 ms
VOICED_DBFS = -45.0


def dbfs(samples: np.ndarray) -> float:
    if samples.size == 0:
        return -120.0
    rms = float(np.sqrt(np.mean((samples.astype(np.float64) / 32768.0) ** 2)))
    return 20 * np.log10(max(rms, 1e-6))


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


class Recorder:
    """Agent audio with arrival times; voiced stretches found by energy."""

    def __init__(self) -> None:
        self.frames: list[tuple[float, np.ndarray]] = []
        self.rate = RATE

    async def consume(self, track: rtc.Track) -> None:
        stream = rtc.AudioStream(track, sample_rate=RATE, num_channels=1)
        async for ev in stream:
            pcm = np.frombuffer(ev.frame.data, dtype=np.int16).copy()
            self.frames.append((time.monotonic(), pcm))

    def first_voiced_after(self, t: float) -> float | None:
        for at, pcm in self.frames:
            if at > t and dbfs(pcm) > VOICED_DBFS:
                return at
        return None

    def last_voiced(self) -> float | None:
        voiced = [at for at, pcm in self.frames if dbfs(pcm) > VOICED_DBFS]
        return voiced[-1] if voiced else None

    async def wait_quiet(self, after: float, quiet_secs: float, limit_secs: float) -> bool:
        """Wait until the agent spoke after ``after`` and then was quiet for ``quiet_secs``."""
        deadline = time.monotonic() + limit_secs
        while time.monotonic() < deadline:
            start = self.first_voiced_after(after)
            last = self.last_voiced()
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


async def web_session(api: str, key: str, agent_id: str) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=api, timeout=30) as http:
        r = await http.post(
            "/v1/sessions/web",
            json={"agent_id": agent_id},
            headers={"Authorization": f"Bearer {key}"},
        )
        r.raise_for_status()
        doc: dict[str, Any] = r.json()
        return doc


async def speak(source: rtc.AudioSource, pcm: np.ndarray, trailing_silence: float) -> None:
    """Real time, 20 ms frames; silence after (a microphone keeps sending)."""
    silence = np.zeros(int(RATE * trailing_silence), dtype=np.int16)
    data = np.concatenate([pcm, silence])
    start = time.monotonic()
    for n, i in enumerate(range(0, len(data) - FRAME + 1, FRAME)):
        frame = rtc.AudioFrame(data[i : i + FRAME].tobytes(), RATE, 1, FRAME)
        await source.capture_frame(frame)
        await asyncio.sleep(max(0.0, start + (n + 1) * 0.02 - time.monotonic()))


async def main(args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if args.token:
        url, token = args.url, args.token
    else:
        session = await web_session(args.api, args.key, args.agent_id)
        out["session"] = {k: session.get(k) for k in ("call_id", "mode", "room")}
        url, token = session["url"], session["token"]
    question = read_wav_48k(Path(args.wav))
    rec = Recorder()
    room = rtc.Room()
    tasks: list[asyncio.Task[None]] = []
    agent_joined = asyncio.Event()

    @room.on("track_subscribed")
    def _sub(track: rtc.Track, _pub: Any, participant: rtc.RemoteParticipant) -> None:
        if track.kind == rtc.TrackKind.KIND_AUDIO:
            out["agent_identity"] = participant.identity
            tasks.append(asyncio.create_task(rec.consume(track)))
            agent_joined.set()

    source = rtc.AudioSource(RATE, 1)
    await room.connect(url, token)
    joined = time.monotonic()
    track = rtc.LocalAudioTrack.create_audio_track("mic", source)
    await room.local_participant.publish_track(
        track, rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_MICROPHONE)
    )
    # Keep the microphone alive (silence) while the greeting plays.
    mic = asyncio.create_task(speak(source, np.zeros(0, dtype=np.int16), args.greeting_wait))
    await asyncio.wait_for(agent_joined.wait(), 30)
    if args.expect_greeting:
        await rec.wait_quiet(joined, 0.8, args.greeting_wait)
        greet = rec.first_voiced_after(joined)
        out["greeting_ms"] = None if greet is None else round((greet - joined) * 1000)
    mic.cancel()
    asked = time.monotonic()
    await speak(source, question, 0.0)
    spoke_until = time.monotonic()
    # Silence after the question, while waiting for the reply.
    mic = asyncio.create_task(speak(source, np.zeros(0, dtype=np.int16), args.reply_wait))
    got = await rec.wait_quiet(spoke_until, 1.2, args.reply_wait)
    reply = rec.first_voiced_after(spoke_until)
    out["reply_heard"] = got
    out["voice_to_voice_ms"] = None if reply is None else round((reply - spoke_until) * 1000)
    rec.write(Path(args.out), asked)
    out["frames"] = len(rec.frames)
    mic.cancel()
    if args.hang_up:
        await room.disconnect()
    for t in tasks:
        t.cancel()
    return out


def parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser()
    p.add_argument("--url")
    p.add_argument("--token")
    p.add_argument("--api")
    p.add_argument("--key")
    p.add_argument("--agent-id")
    p.add_argument("--wav", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--expect-greeting", action="store_true")
    p.add_argument("--greeting-wait", type=float, default=15.0)
    p.add_argument("--reply-wait", type=float, default=30.0)
    p.add_argument("--hang-up", action="store_true")
    return p.parse_args(argv)


if __name__ == "__main__":
    result = asyncio.run(main(parse(sys.argv[1:])))
    print(json.dumps(result))
