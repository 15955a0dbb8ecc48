"""The floor of process-per-call: CPU of a process that only holds one LiveKit room connection.

A "caller" process streams a 440 Hz tone (48 kHz, 20 ms frames) into a room on a local
livekit-server (inside a network namespace this script creates); an "agent" process joins,
publishes an idle audio track (as every agent does) and reads the caller's audio, doing nothing
with it. The agent's CPU per second, by thread, is what any worker that gives each call a
process of its own pays before its pipeline does anything.

Run: ``.venv/bin/python bench/room_floor.py [--window 20] [--modes 48k10,16k20,16k20-nopub]``.
Modes: ``48k10`` reads at 48 kHz in 10 ms frames (the SDK's default, Pipecat's LiveKit input),
``16k20`` at 16 kHz in 20 ms frames (Parley's), ``-nopub`` without the agent's own track.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _threads() -> dict[int, tuple[str, float]]:
    ticks = os.sysconf("SC_CLK_TCK")
    out: dict[int, tuple[str, float]] = {}
    for tid in os.listdir("/proc/self/task"):
        try:
            stat = Path(f"/proc/self/task/{tid}/stat").read_text()
        except OSError:
            continue
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        f = stat[stat.rindex(")") + 2 :].split()
        out[int(tid)] = (name, (int(f[11]) + int(f[12])) / ticks)
    return out


async def caller(room_name: str, seconds: float) -> None:
    import numpy as np
    from livekit import rtc

    from tests.livekit.clients.common import server, token

    room = rtc.Room()
    await room.connect(server()[0], token("caller", room_name))
    source = rtc.AudioSource(48000, 1)
    track = rtc.LocalAudioTrack.create_audio_track("mic", source)
    opts = rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_MICROPHONE)
    await room.local_participant.publish_track(track, opts)
    tone = (np.sin(2 * np.pi * 440 * np.arange(960) / 48000) * 8000).astype(np.int16).tobytes()
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        await source.capture_frame(rtc.AudioFrame(tone, 48000, 1, 960))
    await room.disconnect()


async def agent(room_name: str, mode: str, window: float) -> None:
    from livekit import rtc

    from tests.livekit.clients.common import emit, server, token

    room = rtc.Room()
    subscribed = asyncio.Event()
    frames = [0]

    async def consume(track: rtc.Track) -> None:
        if mode.startswith("48k10"):
            stream = rtc.AudioStream(track)
        else:
            stream = rtc.AudioStream.from_track(
                track=track, sample_rate=16000, num_channels=1, frame_size_ms=20
            )
        async for _ in stream:
            frames[0] += 1

    def on_track(track: rtc.Track, *_: object) -> None:
        if track.kind == rtc.TrackKind.KIND_AUDIO:
            asyncio.get_running_loop().create_task(consume(track))
            subscribed.set()

    room.on("track_subscribed", on_track)
    await room.connect(server()[0], token("agent", room_name))
    if "nopub" not in mode:
        source = rtc.AudioSource(24000, 1)  # idle, like an agent's track between replies
        track = rtc.LocalAudioTrack.create_audio_track("agent", source)
        opts = rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_MICROPHONE)
        await room.local_participant.publish_track(track, opts)
    await subscribed.wait()
    await asyncio.sleep(3)
    r0, t0, f0, th0 = (
        resource.getrusage(resource.RUSAGE_SELF),
        time.monotonic(),
        frames[0],
        _threads(),
    )
    await asyncio.sleep(window)
    r1, th1 = resource.getrusage(resource.RUSAGE_SELF), _threads()
    wall = time.monotonic() - t0
    cpu = r1.ru_utime - r0.ru_utime + r1.ru_stime - r0.ru_stime
    per: dict[str, float] = {}
    for tid, (name, used) in th1.items():
        per[name] = per.get(name, 0.0) + (used - th0.get(tid, (name, 0.0))[1]) * 1000 / wall
    busiest = sorted(per.items(), key=lambda kv: -kv[1])
    emit(
        {
            "mode": mode,
            "cpu_ms_per_s": round(cpu * 1000 / wall, 1),
            "frames_per_s": round((frames[0] - f0) / wall, 1),
            "threads": {k: round(v, 1) for k, v in busiest if v},
        }
    )


def main(args: argparse.Namespace) -> None:
    from tests.livekit.stack import PYTHON, livekit_server_binary, start_livekit_stack
    from tests.netns import Namespace, clean_env

    binary = livekit_server_binary()
    if binary is None:
        raise SystemExit("no livekit-server binary (fix: run scripts/setup.sh)")
    ns = Namespace.create()
    try:
        stack = start_livekit_stack(ns, Path(f"/tmp/room-floor-{os.getpid()}"), binary=binary)
        env = clean_env(None, PYTHONPATH=str(ROOT), **stack.env())
        me = [PYTHON, str(Path(__file__).resolve())]
        print(f"{'mode':<14} {'CPU ms/s':>9} {'frames/s':>9}  by thread (ms/s)")
        for mode in args.modes.split(","):
            room = f"floor-{mode}-{time.time_ns()}"
            pub = ns.popen([*me, "caller", "--room", room, "--seconds", str(args.window + 20)],
                           env=env)  # fmt: skip
            try:
                argv = [*me, "agent", "--room", room, "--mode", mode, "--window", str(args.window)]
                done = ns.run(
                    argv, env=env, capture_output=True, text=True, timeout=args.window + 60
                )
            finally:
                pub.kill()
            res = json.loads(done.stdout.strip().splitlines()[-1])
            top = ", ".join(f"{k} {v}" for k, v in list(res["threads"].items())[:7])
            print(
                f"{mode:<14} {res['cpu_ms_per_s']:>9} {res['frames_per_s']:>9}  {top}", flush=True
            )
        stack.stop()
    finally:
        ns.close()


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("role", nargs="?", default="main", choices=["main", "caller", "agent"])
    p.add_argument("--room", default="")
    p.add_argument("--mode", default="16k20")
    p.add_argument("--modes", default="48k10,16k20,16k20-nopub")
    p.add_argument("--seconds", type=float, default=30.0)
    p.add_argument("--window", type=float, default=20.0)
    a = p.parse_args()
    if a.role == "caller":
        asyncio.run(caller(a.room, a.seconds))
    elif a.role == "agent":
        asyncio.run(agent(a.room, a.mode, a.window))
    else:
        main(a)
