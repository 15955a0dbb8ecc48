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
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from livekit import rtc

from tests.livekit.clients.common import (
    FRAME,
    RATE,
    Recorder,
    add_conversation_args,
    dbfs,
    emit,
    jitter_report,
    read_wav_48k,
)


class RoomRecorder(Recorder):
    """The agent's audio from a room's track, as 48 kHz mono."""

    async def consume(self, track: rtc.Track) -> None:
        stream = rtc.AudioStream(track, sample_rate=RATE, num_channels=1)
        async for ev in stream:
            self.add(np.frombuffer(ev.frame.data, dtype=np.int16).copy())


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
    rec = RoomRecorder()
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
        _, out["greeting_ms"] = await rec.heard_after(joined, 0.8, args.greeting_wait)
        # A greeting heard from its start ramps up from near silence (below -70 dBFS); one whose
        # start was lost (sent before this client could play it) jumps in loud.
        out["greeting_onset_dbfs"] = next(
            (round(d, 1) for at, p in rec.frames if at > joined and (d := dbfs(p)) > -100), None
        )
        out["greeting_jitter"] = await jitter_report(room)
    mic.cancel()
    asked = time.monotonic()
    await speak(source, question, 0.0)
    spoke_until = time.monotonic()
    # Silence after the question, while waiting for the reply.
    mic = asyncio.create_task(speak(source, np.zeros(0, dtype=np.int16), args.reply_wait))
    heard = await rec.heard_after(spoke_until, 1.2, args.reply_wait)
    out["reply_heard"], out["voice_to_voice_ms"] = heard
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
    add_conversation_args(p, required=True, greeting_wait=15.0)
    return p.parse_args(argv)


if __name__ == "__main__":
    emit(asyncio.run(main(parse(sys.argv[1:]))))
