"""The floor for greeting latency: what LiveKit itself needs to deliver audio to a newcomer.

Runs inside the bench's network namespace (LIVEKIT_* in the environment). A publisher joins
and streams a tone; then a listener joins ``--rounds`` times and times, from its
``connect()`` returning, the first voiced frame it receives. Prints the list as JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import time

import numpy as np
from livekit import rtc

from tests.livekit.clients.common import FRAME, RATE, VOICED_DBFS, dbfs, emit, server, token


async def publish_tone(room: rtc.Room, stop: asyncio.Event) -> None:
    source = rtc.AudioSource(RATE, 1)
    track = rtc.LocalAudioTrack.create_audio_track("tone", source)
    await room.local_participant.publish_track(track)
    t = np.arange(FRAME) / RATE
    n = 0
    start = time.monotonic()
    while not stop.is_set():
        pcm = (0.3 * 32767 * np.sin(2 * np.pi * 440 * (t + n * FRAME / RATE))).astype(np.int16)
        await source.capture_frame(rtc.AudioFrame(pcm.tobytes(), RATE, 1, FRAME))
        n += 1
        await asyncio.sleep(max(0.0, start + n * 0.02 - time.monotonic()))


async def listen_once(url: str, room_name: str, n: int) -> float:
    room = rtc.Room()
    heard = asyncio.get_running_loop().create_future()

    async def consume(track: rtc.Track) -> None:
        async for ev in rtc.AudioStream(track, sample_rate=RATE, num_channels=1):
            pcm = np.frombuffer(ev.frame.data, dtype=np.int16)
            if dbfs(pcm) > VOICED_DBFS and not heard.done():
                heard.set_result(time.monotonic())
                return

    tasks: list[asyncio.Task[None]] = []

    @room.on("track_subscribed")
    def _sub(track: rtc.Track, *_: object) -> None:
        tasks.append(asyncio.create_task(consume(track)))

    await room.connect(url, token(f"listener-{n}", room_name))
    joined = time.monotonic()
    at = await asyncio.wait_for(heard, 10)
    await room.disconnect()
    for task in tasks:
        task.cancel()
    return (at - joined) * 1000


async def main(rounds: int) -> list[float]:
    url, _, _ = server()
    room = rtc.Room()
    await room.connect(url, token("publisher", "floor"))
    stop = asyncio.Event()
    tone = asyncio.create_task(publish_tone(room, stop))
    await asyncio.sleep(1.0)
    out = []
    for n in range(rounds):
        out.append(round(await listen_once(url, "floor", n), 1))
        await asyncio.sleep(0.5)
    stop.set()
    await tone
    await room.disconnect()
    return out


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--rounds", type=int, default=8)
    emit({"floor_ms": asyncio.run(main(p.parse_args().rounds))})
