"""Load generator for ``bench/sessions.py``: simulated callers, one LiveKit room each.

Each caller joins its room with the Python ``livekit`` client, publishes a microphone track
(20 ms frames in real time: the spoken question, silence otherwise), dispatches the agent to
the room (explicit dispatch with the job metadata it was given), and then loops: say the
question, wait for the agent's reply to finish, pause 1-2 s, ask again.

Measured per reply (only for questions whose speech ended inside the measurement window):

* voice-to-voice: the last voiced 20 ms frame of the question handed to the microphone track →
  the first received agent frame with the reply's energy (same clock, same process);
* underruns: silent holes inside a reply (the simulated TTS is a steady tone, so any run of
  quiet 20 ms frames shorter than ``END_SILENCE_S`` between loud ones is a gap the listener
  hears), counted as events and milliseconds;
* late frames: received frames arriving more than 40 ms after the previous one while the agent
  speaks (WebRTC's jitter buffer pulls every 10 ms, so this is mostly this process's own lag);
* WebRTC's inbound-rtp concealment counters of the agent track over the window.

Run by ``bench/sessions.py`` (a JSON spec in, a JSON result out); not meant to be run by hand.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
from livekit import api, rtc  # noqa: E402

from parley.audio import read_wav  # noqa: E402

RATE = 16000
FRAME_S = 0.020
FRAME_SAMPLES = int(RATE * FRAME_S)
VOICED_DBFS = -45.0  # the question's voiced frames (same threshold as the WAV harness)
LOUD_RMS = 1500.0  # the reply tone arrives at ~5700 RMS; silence at ~0
END_SILENCE_S = 0.5  # a quiet run this long ends the reply
LATE_GAP_S = 0.040
REPLY_TIMEOUT_S = 10.0


@dataclass
class Turn:
    spoken_at: float  # wall clock (time.time) of the end of the question
    v2v_ms: float | None  # None: no reply within REPLY_TIMEOUT_S
    reply_ms: float = 0.0
    underruns: int = 0
    underrun_ms: float = 0.0
    late_frames: int = 0
    max_gap_ms: float = 0.0


@dataclass
class CallerResult:
    room: str
    connected: bool = False
    answered_before_window: bool = False
    error: str | None = None
    turns: list[Turn] = field(default_factory=list)
    concealment: dict[str, float] = field(default_factory=dict)


class Listener:
    """Follows the agent's audio: reply start/end, holes inside a reply, late frames."""

    def __init__(self) -> None:
        self.reply_started = asyncio.Event()
        self.reply_ended = asyncio.Event()
        self.armed = False
        self.start_t = 0.0
        self.last_loud = 0.0
        self.last_arrival = 0.0
        self.quiet_frames = 0
        self.turn: Turn | None = None

    def arm(self, turn: Turn) -> None:
        self.turn, self.armed = turn, True
        self.reply_started.clear()
        self.reply_ended.clear()

    def frame(self, pcm: np.ndarray, now: float) -> None:
        gap = now - self.last_arrival if self.last_arrival else 0.0
        self.last_arrival = now
        loud = bool(pcm.size) and float(np.sqrt(np.mean(pcm.astype(np.float32) ** 2))) > LOUD_RMS
        turn = self.turn
        if turn is None or not self.armed:
            return
        if not self.reply_started.is_set():
            if loud:
                self.start_t = self.last_loud = now
                self.quiet_frames = 0
                self.reply_started.set()
            return
        if gap > LATE_GAP_S:
            turn.late_frames += 1
            turn.max_gap_ms = max(turn.max_gap_ms, gap * 1000)
        if loud:
            if self.quiet_frames:
                turn.underruns += 1
                turn.underrun_ms += self.quiet_frames * FRAME_S * 1000  # playback time
            self.quiet_frames = 0
            self.last_loud = now
        else:
            self.quiet_frames += 1
            if now - self.last_loud >= END_SILENCE_S:
                turn.reply_ms = (self.last_loud - self.start_t) * 1000
                self.armed = False
                self.reply_ended.set()


class Window:
    """The measurement window: the bench writes it to a file once every caller answered."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.value: tuple[float, float] | None = None

    def get(self) -> tuple[float, float] | None:
        if self.value is None and self.path.exists():
            doc = json.loads(self.path.read_text())
            self.value = (float(doc["start"]), float(doc["end"]))
        return self.value


class Caller:
    def __init__(
        self, spec: dict[str, Any], args: argparse.Namespace, question: bytes, window: Window
    ) -> None:
        self.spec, self.args, self.question, self.window = spec, args, question, window
        self.ready = asyncio.Event()  # answered once (or failed): the window may start
        self.result = CallerResult(room=spec["room"])
        self.listener = Listener()
        self.room = rtc.Room()
        self.source = rtc.AudioSource(RATE, 1)
        self.speech: list[bytes] = []  # frames queued for the microphone
        self.speech_done = asyncio.Event()
        self.last_voiced_at = 0.0

    async def run(self) -> CallerResult:
        try:
            await self._run()
        except Exception as err:  # one failed caller must not end the others
            self.result.error = f"{type(err).__name__}: {err}"
        finally:
            self.ready.set()
            await self.room.disconnect()
        return self.result

    async def _run(self) -> None:
        a = self.args
        token = (
            api.AccessToken(a.api_key, a.api_secret)
            .with_identity(f"caller-{self.spec['room']}")
            .with_grants(api.VideoGrants(room_join=True, room=self.spec["room"]))
            .to_jwt()
        )
        self.room.on("track_subscribed", self._on_track)
        await self.room.connect(a.url, token)
        track = rtc.LocalAudioTrack.create_audio_track("mic", self.source)
        options = rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_MICROPHONE)
        await self.room.local_participant.publish_track(track, options)
        self.result.connected = True
        mic = asyncio.create_task(self._microphone())
        async with api.LiveKitAPI(a.http_url, a.api_key, a.api_secret) as lk:
            await lk.agent_dispatch.create_dispatch(
                api.CreateAgentDispatchRequest(
                    agent_name=self.spec["agent_name"],
                    room=self.spec["room"],
                    metadata=self.spec.get("metadata", ""),
                )
            )
        await asyncio.sleep(random.uniform(0.5, 2.0))  # callers do not talk in lockstep
        stats_at_start: dict[str, float] | None = None
        while True:
            window, now = self.window.get(), time.time()
            if (window and now >= window[1]) or (not window and now >= a.give_up_at):
                break
            if window and stats_at_start is None and now >= window[0]:
                stats_at_start = await self._concealment()
            turn = await self._ask()
            window = self.window.get()
            if turn.v2v_ms is not None and (not window or time.time() < window[0]):
                self.result.answered_before_window = True
                self.ready.set()
            if window and window[0] <= turn.spoken_at <= window[1]:
                self.result.turns.append(turn)
            await asyncio.sleep(random.uniform(1.0, 2.0))
        if stats_at_start is not None:
            end = await self._concealment()
            self.result.concealment = {k: end[k] - stats_at_start.get(k, 0) for k in end}
        mic.cancel()

    async def _ask(self) -> Turn:
        self.speech_done.clear()
        self.speech = [
            self.question[i : i + FRAME_SAMPLES * 2]
            for i in range(0, len(self.question), FRAME_SAMPLES * 2)
        ]
        await self.speech_done.wait()
        turn = Turn(spoken_at=time.time(), v2v_ms=None)
        self.listener.arm(turn)
        spoken_mono = self.last_voiced_at
        try:
            await asyncio.wait_for(self.listener.reply_started.wait(), REPLY_TIMEOUT_S)
        except TimeoutError:
            self.listener.armed = False
            return turn
        turn.v2v_ms = (self.listener.start_t - spoken_mono) * 1000
        try:
            await asyncio.wait_for(self.listener.reply_ended.wait(), 30.0)
        except TimeoutError:
            self.listener.armed = False
        return turn

    async def _microphone(self) -> None:
        """20 ms frames on a fixed clock, like a sound card: speech when queued, else silence."""
        silence = bytes(FRAME_SAMPLES * 2)
        t0 = time.monotonic()
        i = 0
        while True:
            i += 1
            if (wait := t0 + i * FRAME_S - time.monotonic()) > 0:
                await asyncio.sleep(wait)
            speaking = bool(self.speech)
            pcm = self.speech.pop(0).ljust(FRAME_SAMPLES * 2, b"\0") if speaking else silence
            await self.source.capture_frame(rtc.AudioFrame(pcm, RATE, 1, FRAME_SAMPLES))
            if speaking:
                if _dbfs(pcm) > VOICED_DBFS:
                    self.last_voiced_at = time.monotonic()
                if not self.speech:
                    self.speech_done.set()

    def _on_track(self, track: rtc.Track, *_: Any) -> None:
        if track.kind == rtc.TrackKind.KIND_AUDIO:
            asyncio.get_running_loop().create_task(self._listen(track))

    async def _listen(self, track: rtc.Track) -> None:
        stream = rtc.AudioStream.from_track(
            track=track, sample_rate=RATE, num_channels=1, frame_size_ms=20
        )
        async for event in stream:
            pcm = np.frombuffer(event.frame.data, dtype=np.int16)
            self.listener.frame(pcm, time.monotonic())

    async def _concealment(self) -> dict[str, float]:
        totals = {"events": 0.0, "concealed_ms": 0.0, "silent_concealed_ms": 0.0, "lost": 0.0}
        try:
            stats = await self.room.get_rtc_stats()
        except Exception:
            return totals
        for s in stats.subscriber_stats:
            if s.WhichOneof("stats") != "inbound_rtp" or s.inbound_rtp.stream.kind != "audio":
                continue
            inbound = s.inbound_rtp.inbound
            totals["events"] += inbound.concealment_events
            totals["concealed_ms"] += inbound.concealed_samples / 48.0
            totals["silent_concealed_ms"] += inbound.silent_concealed_samples / 48.0
            totals["lost"] += s.inbound_rtp.received.packets_lost
        return totals


def _dbfs(pcm: bytes) -> float:
    a = np.frombuffer(pcm, dtype="<i2").astype(np.float64)
    rms = float(np.sqrt(np.mean(a * a))) if a.size else 0.0
    return 20.0 * float(np.log10(rms / 32768.0)) if rms > 0 else -120.0


async def main() -> None:
    ap = argparse.ArgumentParser(description="simulated LiveKit callers")
    ap.add_argument("--spec", type=Path, required=True, help="JSON list of rooms to join")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--wav", type=Path, required=True)
    ap.add_argument("--url", required=True)
    ap.add_argument("--http-url", required=True)
    ap.add_argument("--window-file", type=Path, required=True, help='{"start", "end"} epoch s')
    ap.add_argument("--give-up-at", type=float, required=True, help="epoch s without a window")
    args = ap.parse_args()
    # Keys come from the environment (never on a command line).
    args.api_key, args.api_secret = os.environ["LIVEKIT_API_KEY"], os.environ["LIVEKIT_API_SECRET"]
    question = read_wav(args.wav, RATE).data
    specs = json.loads(args.spec.read_text())
    window = Window(args.window_file)
    callers = [Caller(spec, args, question, window) for spec in specs]

    async def announce() -> None:
        await asyncio.gather(*(c.ready.wait() for c in callers))
        print("READY", flush=True)

    announcing = asyncio.create_task(announce())
    results = await asyncio.gather(*(c.run() for c in callers))
    announcing.cancel()
    args.out.write_text(json.dumps([asdict(r) for r in results]))


if __name__ == "__main__":
    asyncio.run(main())
