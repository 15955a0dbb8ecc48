"""The floor of a call: CPU of a process that only holds LiveKit room connections.

A "caller" process streams a 440 Hz tone (48 kHz, 20 ms frames) into each of N rooms on a local
livekit-server (inside a network namespace this script creates); one "agent" process joins all
N rooms (one event loop, as ``parley worker --threads`` serves its calls), publishes an idle
audio track in each (as every agent does) and reads each caller's audio, doing nothing with it.
The agent's CPU per room and second, by thread, is what any worker pays per call before its
pipeline does anything: with ``--rooms 1``, what a worker that gives each call a process pays.

Run: ``.venv/bin/python bench/room_floor.py [--window 20] [--rooms 1,4,8] [--modes ...]``.
Modes: ``48k10`` reads at 48 kHz in 10 ms frames (the SDK's default, Pipecat's LiveKit input),
``16k20`` at 16 kHz in 20 ms frames through Parley's per-stream subscription, ``-nopub``
without the agent's own track, ``pipecat``: a bare Pipecat pipeline per room (Parley's LiveKit
transport in → out, nothing between): what any Pipecat agent pays before VAD, STT, LLM, TTS.
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


async def caller(room_names: list[str], seconds: float) -> None:
    import numpy as np
    from livekit import rtc

    from tests.livekit.clients.common import server, token

    tone = (np.sin(2 * np.pi * 440 * np.arange(960) / 48000) * 8000).astype(np.int16).tobytes()
    end = time.monotonic() + seconds

    async def one(room_name: str) -> None:
        room = rtc.Room()
        await room.connect(server()[0], token("caller", room_name))
        source = rtc.AudioSource(48000, 1)
        track = rtc.LocalAudioTrack.create_audio_track("mic", source)
        opts = rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_MICROPHONE)
        await room.local_participant.publish_track(track, opts)
        while time.monotonic() < end:
            await source.capture_frame(rtc.AudioFrame(tone, 48000, 1, 960))
        await room.disconnect()

    await asyncio.gather(*(one(r) for r in room_names))


async def _bare_pipecat(room_name: str, subscribed: asyncio.Event) -> None:
    """Parley's LiveKit transport, input straight into output: no VAD, STT, LLM or TTS."""
    from pipecat.pipeline.pipeline import Pipeline
    from pipecat.pipeline.worker import PipelineParams, PipelineWorker
    from pipecat.transports.livekit.transport import LiveKitParams
    from pipecat.workers.runner import WorkerRunner

    from agents.livekit.transport import ParleyLiveKitTransport
    from tests.livekit.clients.common import server, token

    transport = ParleyLiveKitTransport(
        url=server()[0],
        token=token("agent", room_name),
        room_name=room_name,
        params=LiveKitParams(
            audio_in_enabled=True,
            audio_out_enabled=True,
            audio_in_sample_rate=16000,
            audio_out_sample_rate=24000,
            audio_in_user_tracks=False,
        ),
    )
    transport.add_event_handler("on_first_participant_joined", lambda *_: subscribed.set())
    worker = PipelineWorker(
        Pipeline([transport.input(), transport.output()]),
        params=PipelineParams(
            audio_in_sample_rate=16000, audio_out_sample_rate=24000, enable_metrics=True
        ),
        enable_turn_tracking=False,
        idle_timeout_secs=None,
    )
    runner = WorkerRunner(handle_sigint=False)
    await runner.add_workers(worker)
    await runner.run()


async def agent(room_names: list[str], mode: str, window: float) -> None:
    from livekit import rtc

    from agents.livekit.transport import own_audio_stream
    from tests.livekit.clients.common import emit, server, token

    frames = [0]
    ready: list[asyncio.Event] = []
    keep: list[object] = []

    async def consume(track: rtc.Track) -> None:
        if mode.startswith("48k10"):
            stream = rtc.AudioStream(track)
        else:
            stream = own_audio_stream(track, 16000)
        async for _ in stream:
            frames[0] += 1

    async def join(room_name: str) -> None:
        subscribed = asyncio.Event()
        ready.append(subscribed)
        if mode == "pipecat":
            keep.append(asyncio.create_task(_bare_pipecat(room_name, subscribed)))
            return
        room = rtc.Room()
        keep.append(room)

        def on_track(track: rtc.Track, *_: object) -> None:
            if track.kind == rtc.TrackKind.KIND_AUDIO:
                keep.append(asyncio.get_running_loop().create_task(consume(track)))
                subscribed.set()

        room.on("track_subscribed", on_track)
        await room.connect(server()[0], token("agent", room_name))
        if "nopub" not in mode:
            source = rtc.AudioSource(24000, 1)  # idle, like an agent's track between replies
            track = rtc.LocalAudioTrack.create_audio_track("agent", source)
            opts = rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_MICROPHONE)
            await room.local_participant.publish_track(track, opts)

    await asyncio.gather(*(join(r) for r in room_names))
    await asyncio.wait_for(asyncio.gather(*(e.wait() for e in ready)), 60)
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
    n = len(room_names)
    emit(
        {
            "mode": mode,
            "rooms": n,
            "cpu_ms_per_s": round(cpu * 1000 / wall / n, 1),
            "frames_per_s": round((frames[0] - f0) / wall / n, 1),
            "threads": {k: round(v / n, 1) for k, v in busiest if v},
        }
    )
    os._exit(0)  # N rooms and pipelines: no orderly teardown needed for a measurement


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
        print(f"{'mode':<14} {'rooms':>5} {'CPU ms/s per room':>17} {'frames/s':>9}  by thread")
        for n in [int(x) for x in args.rooms.split(",")]:
            for mode in args.modes.split(","):
                rooms = ",".join(f"floor-{mode}-{i}-{time.time_ns()}" for i in range(n))
                secs = str(args.window + 30 + n)
                pub = ns.popen([*me, "caller", "--room", rooms, "--seconds", secs], env=env)
                try:
                    argv = [*me, "agent", "--room", rooms, "--mode", mode]
                    argv += ["--window", str(args.window)]
                    done = ns.run(
                        argv, env=env, capture_output=True, text=True, timeout=args.window + 90
                    )
                finally:
                    pub.kill()
                res = json.loads(done.stdout.strip().splitlines()[-1])
                top = ", ".join(f"{k} {v}" for k, v in list(res["threads"].items())[:7])
                print(
                    f"{mode:<14} {n:>5} {res['cpu_ms_per_s']:>17} {res['frames_per_s']:>9}  {top}",
                    flush=True,
                )
        stack.stop()
    finally:
        ns.close()


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("role", nargs="?", default="main", choices=["main", "caller", "agent"])
    p.add_argument("--room", default="", help="comma-separated room names")
    p.add_argument("--mode", default="16k20")
    p.add_argument("--modes", default="48k10,16k20,16k20-nopub")
    p.add_argument("--rooms", default="1", help="room counts, comma separated")
    p.add_argument("--seconds", type=float, default=30.0)
    p.add_argument("--window", type=float, default=20.0)
    a = p.parse_args()
    if a.role == "caller":
        asyncio.run(caller(a.room.split(","), a.seconds))
    elif a.role == "agent":
        asyncio.run(agent(a.room.split(","), a.mode, a.window))
    else:
        main(a)
