"""The floor for greeting latency: what LiveKit itself needs to deliver audio to a newcomer.

Runs inside the bench's network namespace (LIVEKIT_* in the environment). A publisher joins
and streams a tone; then a listener joins ``--rounds`` times and times, from its
``connect()`` returning, the first voiced frame it receives (``floor_ms``).

``start_ms``: what an agent's greeting is up against instead. A publisher's source is idle
(LiveKit sends silence), a listener joins, and ``--start-after`` seconds later the publisher
writes a tone as Pipecat writes speech (24 kHz, 40 ms chunks into a 1 s source queue); timed
from the first write to the listener's first voiced frame. Prints both lists as JSON.
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


async def start_once(url: str, n: int, start_after: float) -> float:
    """One fresh room: an idle publisher, a listener, then speech (see the module doc)."""
    rate, chunk = 24000, 960
    room_name = f"start-{n}"
    pub = rtc.Room()
    await pub.connect(url, token(f"speaker-{n}", room_name))
    source = rtc.AudioSource(rate, 1, queue_size_ms=1000)
    track = rtc.LocalAudioTrack.create_audio_track("voice", source)
    options = rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_MICROPHONE)
    await pub.local_participant.publish_track(track, options)
    await asyncio.sleep(1.0)
    listener = rtc.Room()
    heard: asyncio.Future[float] = asyncio.get_running_loop().create_future()
    started = 0.0

    async def consume(t: rtc.Track) -> None:
        async for ev in rtc.AudioStream(t, sample_rate=RATE, num_channels=1):
            pcm = np.frombuffer(ev.frame.data, dtype=np.int16)
            if started and not heard.done() and dbfs(pcm) > VOICED_DBFS:
                heard.set_result(time.monotonic())

    tasks: list[asyncio.Task[None]] = []
    listener.on("track_subscribed", lambda t, *_: tasks.append(asyncio.create_task(consume(t))))
    await listener.connect(url, token(f"newcomer-{n}", room_name))
    await asyncio.sleep(start_after)
    t = np.arange(rate) / rate
    tone = (0.3 * 32767 * np.minimum(1.0, t / 0.02) * np.sin(2 * np.pi * 300 * t)).astype(np.int16)
    started = time.monotonic()
    for i in range(0, len(tone), chunk):
        await source.capture_frame(rtc.AudioFrame(tone[i : i + chunk].tobytes(), rate, 1, chunk))
    at = await asyncio.wait_for(heard, 5)
    for task in tasks:
        task.cancel()
    await listener.disconnect()
    await pub.disconnect()
    return (at - started) * 1000


async def main(rounds: int, start_after: float) -> dict[str, list[float]]:
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
    starts = [round(await start_once(url, n, start_after), 1) for n in range(rounds)]
    return {"floor_ms": out, "start_ms": starts}


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--rounds", type=int, default=8)
    # About when the greeting's first audio is written in bench/greeting.py.
    p.add_argument("--start-after", type=float, default=0.15)
    args = p.parse_args()
    emit(asyncio.run(main(args.rounds, args.start_after)))
