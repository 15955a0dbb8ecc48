"""Two participants in one room: "speaker" publishes a 440 Hz sine for a while, "listener"
subscribes and measures what arrives; the room is also looked up through the server API.

Run inside the namespace: ``python -m tests.livekit.clients.sine_pubsub --room R [--seconds 2]``
with LIVEKIT_URL / LIVEKIT_API_KEY / LIVEKIT_API_SECRET set. Prints JSON: frames and RMS received,
the dominant frequency, rooms listed by the API, ICE candidate addresses, timings.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any

import numpy as np
from livekit import api, rtc

from tests.livekit.clients.common import emit, ice_report, log, server, token

RATE = 48000
FRAME = RATE // 50  # 20 ms
TONE_HZ = 440.0


class Listener:
    def __init__(self) -> None:
        self.chunks: list[np.ndarray] = []
        self.first_at: float | None = None
        self.task: asyncio.Task[None] | None = None

    def on_track(self, track: rtc.Track, *_: Any) -> None:
        if track.kind == rtc.TrackKind.KIND_AUDIO and self.task is None:
            self.task = asyncio.get_running_loop().create_task(self.consume(track))

    async def consume(self, track: rtc.Track) -> None:
        stream = rtc.AudioStream(track, sample_rate=RATE, num_channels=1)
        async for event in stream:
            samples = np.frombuffer(event.frame.data, dtype=np.int16)
            if self.first_at is None and np.abs(samples).max() > 1000:
                self.first_at = time.monotonic()
            self.chunks.append(samples.copy())

    def summary(self) -> dict[str, Any]:
        audio = np.concatenate(self.chunks) if self.chunks else np.zeros(1, np.int16)
        x = audio.astype(np.float64)
        loud = np.flatnonzero(np.abs(x) > 1000)
        # The tone's span (first to last loud sample), minus its edges: one contiguous signal.
        span = x[loud[0] + RATE // 10 : loud[-1] - RATE // 10] if loud.size else x[:0]
        peak_hz = 0.0
        if span.size > RATE // 10:
            spectrum = np.abs(np.fft.rfft(span * np.hanning(span.size)))
            peak_hz = float(np.argmax(spectrum) * RATE / span.size)
        return {
            "frames": len(self.chunks),
            "samples": int(audio.size),
            "tone_seconds": round((loud[-1] - loud[0]) / RATE, 3) if loud.size else 0.0,
            "tone_rms": float(np.sqrt(np.mean(span**2))) if span.size else 0.0,
            "peak_hz": round(peak_hz, 1),
        }


async def publish_tone(room: rtc.Room, seconds: float) -> int:
    source = rtc.AudioSource(RATE, 1)
    track = rtc.LocalAudioTrack.create_audio_track("sine", source)
    opts = rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_MICROPHONE)
    await room.local_participant.publish_track(track, opts)
    t = np.arange(FRAME) / RATE
    start = time.monotonic()
    sent = 0
    while sent * 0.02 < seconds:
        phase = 2 * np.pi * TONE_HZ * sent * FRAME / RATE
        pcm = (0.4 * 32767 * np.sin(2 * np.pi * TONE_HZ * t + phase)).astype(np.int16)
        frame = rtc.AudioFrame(pcm.tobytes(), RATE, 1, FRAME)
        await source.capture_frame(frame)
        sent += 1
        # Pace at real time (the source's queue would otherwise absorb a burst).
        await asyncio.sleep(max(0.0, start + sent * 0.02 - time.monotonic()))
    await source.wait_for_playout()
    return sent


async def room_service(room: str) -> dict[str, Any]:
    """Rooms and our room's participants, through the server's twirp API (RoomService)."""
    url, key, secret = server()
    lkapi = api.LiveKitAPI(url, key, secret)
    try:
        rooms = await lkapi.room.list_rooms(api.ListRoomsRequest())
        people = await lkapi.room.list_participants(api.ListParticipantsRequest(room=room))
    finally:
        await lkapi.aclose()
    return {
        "rooms": sorted(r.name for r in rooms.rooms),
        "participants": sorted(p.identity for p in people.participants),
    }


async def main(room_name: str, seconds: float) -> dict[str, Any]:
    url, _, _ = server()
    t0 = time.monotonic()
    listener_room, speaker_room = rtc.Room(), rtc.Room()
    listener = Listener()
    listener_room.on("track_subscribed", listener.on_track)
    await listener_room.connect(url, token("listener", room_name))
    await speaker_room.connect(url, token("speaker", room_name))
    connected_s = time.monotonic() - t0
    log(f"both connected after {connected_s:.2f} s")
    publish_at = time.monotonic()
    sent, service = await asyncio.gather(
        publish_tone(speaker_room, seconds), room_service(room_name)
    )
    await asyncio.sleep(0.3)  # the last packets in flight
    ice = {"speaker": await ice_report(speaker_room), "listener": await ice_report(listener_room)}
    await speaker_room.disconnect()
    await listener_room.disconnect()
    if listener.task:
        listener.task.cancel()
    first = listener.first_at
    return {
        "sent_frames": sent,
        "received": listener.summary(),
        "first_audio_s": round(first - publish_at, 3) if first else None,
        "connect_s": round(connected_s, 3),
        "room_service": service,
        "ice": ice,
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--room", required=True)
    parser.add_argument("--seconds", type=float, default=2.0)
    args = parser.parse_args()
    emit(asyncio.run(main(args.room, args.seconds)))
