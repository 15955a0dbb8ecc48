"""Helpers for the Python clients run inside the test namespace (``run_in_ns``).

Clients read the server and keys from ``LIVEKIT_URL``, ``LIVEKIT_API_KEY``, ``LIVEKIT_API_SECRET``
(``LiveKitStack.env()``), log to stderr and print one JSON object as their last stdout line.
The audio helpers (48 kHz mono int16) serve every client that speaks to or records the agent.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
import wave
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from livekit import rtc

RATE = 48000
FRAME = RATE // 50  # 20 ms
VOICED_DBFS = -45.0


def server() -> tuple[str, str, str]:
    """(url, api_key, api_secret) from the environment."""
    return (
        os.environ["LIVEKIT_URL"],
        os.environ["LIVEKIT_API_KEY"],
        os.environ["LIVEKIT_API_SECRET"],
    )


def token(identity: str, room: str) -> str:
    """A join token for ``room`` signed with the environment's keys."""
    # Imported here: loading livekit takes seconds, and the aiortc/browser clients never need it.
    from livekit import api

    _, key, secret = server()
    grants = api.VideoGrants(room_join=True, room=room)
    return api.AccessToken(key, secret).with_identity(identity).with_grants(grants).to_jwt()


async def ice_report(room: rtc.Room) -> dict[str, list[str]]:
    """Addresses of every ICE candidate the room's peer connections know, and of the pairs in use.

    ``{"candidates": [...], "selected": ["local -> remote", ...]}``: tests assert that they all
    lie in 10.213.0.0/24 (nothing may touch the machine's own interfaces).
    """
    stats = await room.get_rtc_stats()
    addresses: dict[str, str] = {}
    pairs = []
    for entry in [*stats.publisher_stats, *stats.subscriber_stats]:
        kind = entry.WhichOneof("stats")
        if kind in ("local_candidate", "remote_candidate"):
            cand = getattr(entry, kind)
            addresses[cand.rtc.id] = f"{cand.candidate.address}:{cand.candidate.port}"
        elif kind == "candidate_pair":
            pair = entry.candidate_pair.candidate_pair
            if pair.nominated:
                pairs.append((pair.local_candidate_id, pair.remote_candidate_id))
    selected = [f"{addresses.get(a, a)} -> {addresses.get(b, b)}" for a, b in pairs]
    return {"candidates": sorted(set(addresses.values())), "selected": selected}


async def jitter_report(room: rtc.Room) -> dict[str, float]:
    """The receiving side's view of the remote audio so far (WebRTC inbound-rtp stats): network
    jitter, the jitter buffer's average delay and target (ms), and audio dropped to catch up."""
    stats = await room.get_rtc_stats()
    # Either list: a single peer connection may carry both directions.
    for entry in [*stats.subscriber_stats, *stats.publisher_stats]:
        if entry.WhichOneof("stats") != "inbound_rtp":
            continue
        rtp = entry.inbound_rtp
        if rtp.stream.kind != "audio":
            continue
        inbound, emitted = rtp.inbound, max(1, rtp.inbound.jitter_buffer_emitted_count)
        return {
            "jitter_ms": round(rtp.received.jitter * 1000, 1),
            "buffer_ms": round(inbound.jitter_buffer_delay / emitted * 1000, 1),
            "target_ms": round(inbound.jitter_buffer_target_delay / emitted * 1000, 1),
            "accelerated_ms": round(inbound.removed_samples_for_acceleration / RATE * 1000, 1),
        }
    return {}


def log(*parts: object) -> None:
    print(*parts, file=sys.stderr, flush=True)


def emit(result: dict[str, Any]) -> None:
    """Print the client's result (the last line of stdout, read by ``run_in_ns``) and exit at
    once: the LiveKit FFI runtime can abort (SIGABRT) while Python tears it down at exit."""
    print(json.dumps(result), flush=True)
    sys.stderr.flush()
    os._exit(0)


def add_conversation_args(
    parser: argparse.ArgumentParser, *, required: bool, greeting_wait: float
) -> None:
    """The options of a caller that hears the greeting, asks ``--wav`` and records the reply."""
    parser.add_argument("--wav", required=required)
    parser.add_argument("--out", required=required)
    parser.add_argument("--expect-greeting", action="store_true")
    parser.add_argument("--greeting-wait", type=float, default=greeting_wait)
    parser.add_argument("--reply-wait", type=float, default=30.0)
    parser.add_argument("--hang-up", action="store_true")


def dbfs(samples: np.ndarray) -> float:
    if samples.size == 0:
        return -120.0
    rms = float(np.sqrt(np.mean((samples.astype(np.float64) / 32768.0) ** 2)))
    return 20 * float(np.log10(max(rms, 1e-6)))


def read_wav_48k(path: Path) -> np.ndarray:
    """A WAV file as 48 kHz mono int16 (channels averaged, linear resampling)."""
    with wave.open(str(path)) as w:
        rate, ch = w.getframerate(), w.getnchannels()
        pcm = np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16)
    if ch > 1:
        pcm = pcm.reshape(-1, ch).mean(axis=1).astype(np.int16)
    if rate != RATE:
        x = np.arange(0, len(pcm), rate / RATE)
        pcm = np.interp(x, np.arange(len(pcm)), pcm).astype(np.int16)
    return pcm


def write_wav_48k(path: Path, pcm: np.ndarray) -> Path:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(pcm.astype(np.int16).tobytes())
    return path


class Recorder:
    """The agent's audio (48 kHz mono) with arrival times; voiced stretches found by energy.
    Each client feeds it from its own kind of track (``add``)."""

    def __init__(self) -> None:
        self.frames: list[tuple[float, np.ndarray]] = []

    def add(self, pcm: np.ndarray) -> None:
        self.frames.append((time.monotonic(), pcm))

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

    async def heard_after(
        self, t: float, quiet_secs: float, limit_secs: float
    ) -> tuple[bool, int | None]:
        """``wait_quiet``, then (whether the agent spoke and fell quiet, ms from ``t`` to its
        first voiced frame or None)."""
        done = await self.wait_quiet(t, quiet_secs, limit_secs)
        first = self.first_voiced_after(t)
        return done, None if first is None else round((first - t) * 1000)

    def write(self, path: Path, since: float) -> None:
        pcm = [p for at, p in self.frames if at >= since]
        write_wav_48k(path, np.concatenate(pcm) if pcm else np.zeros(0, dtype=np.int16))
