"""A transport that plays WAV files as the user's microphone and records the agent's speech.

Input is streamed in real time, 20 ms per frame, like a phone or browser would: the greeting is
awaited, then each utterance plays, followed by silence until the agent has replied (or a
timeout passes). Output is paced like a sound card and cut into one recording per agent turn.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

from loguru import logger
from pipecat.frames.frames import (
    BotStartedSpeakingFrame,
    BotStoppedSpeakingFrame,
    CancelFrame,
    EndFrame,
    EndWorkerFrame,
    Frame,
    InputAudioRawFrame,
    OutputAudioRawFrame,
    StartFrame,
)
from pipecat.processors.frame_processor import FrameDirection
from pipecat.transports.base_input import BaseInputTransport
from pipecat.transports.base_output import BaseOutputTransport
from pipecat.transports.base_transport import BaseTransport, TransportParams

from parley.audio import Pcm, rms_dbfs

FRAME_MS = 20


@dataclass
class CallerScript:
    """What the simulated user says, and how patient they are."""

    utterances: list[Pcm]
    wait_for_greeting: bool = True
    reply_timeout_secs: float = 30.0
    settle_secs: float = 0.6  # silence kept after the agent's reply before speaking again
    # Barge-in: speak utterance N+1 this long after the agent *starts* replying to N, instead of
    # waiting for the reply to finish.
    barge_in_after_secs: float | None = None
    # When the last voiced frame of each utterance was sent (monotonic): the caller's true end of
    # speech, independent of the VAD, for measuring latency from the outside.
    speech_end_times: list[float] = field(default_factory=list)


class _Pacer:
    """Sleeps so that consecutive frames go out at their real-time pace."""

    def __init__(self) -> None:
        self._next = 0.0

    async def wait(self, seconds: float) -> None:
        now = time.monotonic()
        if self._next < now - 0.1:  # idle, or fell far behind: restart the clock
            self._next = now
        await asyncio.sleep(max(0.0, self._next - now))
        self._next += seconds


class FileInputTransport(BaseInputTransport):
    def __init__(self, script: CallerScript, params: TransportParams):
        super().__init__(params)
        self._script = script
        self._bot_speaking = False
        self._bot_started = asyncio.Event()
        self._bot_done = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.finished = asyncio.Event()

    async def start(self, frame: StartFrame) -> None:
        await super().start(frame)
        await self.set_transport_ready(frame)
        if self._task is None:
            self._task = self.create_task(self._play(), "file-input")

    async def stop(self, frame: EndFrame) -> None:
        await self._stop_task()
        await super().stop(frame)

    async def cancel(self, frame: CancelFrame) -> None:
        await self._stop_task()
        await super().cancel(frame)

    async def _stop_task(self) -> None:
        if self._task is not None and self._task is not asyncio.current_task():
            await self.cancel_task(self._task)
        self._task = None

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        # The output transport announces the agent's speech upstream; it reaches us last.
        if isinstance(frame, BotStartedSpeakingFrame):
            self._bot_speaking = True
            self._bot_started.set()
            self._bot_done.clear()
        elif isinstance(frame, BotStoppedSpeakingFrame):
            self._bot_speaking = False
            self._bot_done.set()
        await super().process_frame(frame, direction)

    async def _play(self) -> None:
        pacer = _Pacer()
        rate = self.sample_rate
        step = rate * FRAME_MS // 1000 * 2
        silence = bytes(step)
        if self._script.wait_for_greeting:
            await self._silence_until_reply(pacer, silence)
        last = len(self._script.utterances)
        for n, pcm in enumerate(self._script.utterances, start=1):
            logger.info(f"user utterance {n}: {pcm.seconds:.2f} s")
            voiced_end = _last_voiced_offset(pcm.data, step)
            for i in range(0, len(pcm.data), step):
                await self._send(pcm.data[i : i + step].ljust(step, b"\0"), pacer)
                if i == voiced_end:
                    self._script.speech_end_times.append(time.monotonic())
            self._bot_done.clear()
            self._bot_started.clear()
            if self._script.barge_in_after_secs is not None and n < last:
                await self._silence_until_started(pacer, silence)
            else:
                await self._silence_until_reply(pacer, silence)
        self.finished.set()
        # Upstream to the worker, which then ends the pipeline in order with EndFrame.
        await self.push_frame(EndWorkerFrame(reason="script_done"), FrameDirection.UPSTREAM)

    async def _silence_until_started(self, pacer: _Pacer, silence: bytes) -> None:
        deadline = time.monotonic() + self._script.reply_timeout_secs
        while not self._bot_started.is_set() and time.monotonic() < deadline:
            await self._send(silence, pacer)
        until = time.monotonic() + (self._script.barge_in_after_secs or 0.0)
        while time.monotonic() < until:
            await self._send(silence, pacer)

    async def _silence_until_reply(self, pacer: _Pacer, silence: bytes) -> None:
        deadline = time.monotonic() + self._script.reply_timeout_secs
        while not self._bot_done.is_set() or self._bot_speaking:
            if time.monotonic() > deadline:
                logger.warning("no agent reply before the timeout; continuing the script")
                break
            await self._send(silence, pacer)
        settle_until = time.monotonic() + self._script.settle_secs
        while time.monotonic() < settle_until:
            await self._send(silence, pacer)

    async def _send(self, chunk: bytes, pacer: _Pacer) -> None:
        await pacer.wait(FRAME_MS / 1000)
        await self.push_audio_frame(
            InputAudioRawFrame(audio=chunk, sample_rate=self.sample_rate, num_channels=1)
        )


def _last_voiced_offset(pcm: bytes, step: int, threshold_dbfs: float = -45.0) -> int:
    """Byte offset of the last frame louder than ``threshold_dbfs`` (0 if none is)."""
    last = 0
    for i in range(0, len(pcm), step):
        if rms_dbfs(pcm[i : i + step]) > threshold_dbfs:
            last = i
    return last


class FileOutputTransport(BaseOutputTransport):
    def __init__(self, params: TransportParams):
        super().__init__(params)
        self._pacer = _Pacer()
        self._current: bytearray | None = None
        self.turns: list[bytes] = []
        self.turn_start_times: list[float] = []  # monotonic time of each turn's first audio

    async def start(self, frame: StartFrame) -> None:
        await super().start(frame)
        await self.set_transport_ready(frame)

    async def write_audio_frame(self, frame: OutputAudioRawFrame) -> bool:
        if self._current is not None:
            if not self._current:
                self.turn_start_times.append(time.monotonic())
            self._current += frame.audio
        await self._pacer.wait(len(frame.audio) / 2 / frame.sample_rate)
        return True

    async def push_frame(
        self, frame: Frame, direction: FrameDirection = FrameDirection.DOWNSTREAM
    ) -> None:
        if direction == FrameDirection.DOWNSTREAM:
            if isinstance(frame, BotStartedSpeakingFrame):
                self._current = bytearray()
            elif isinstance(frame, BotStoppedSpeakingFrame) and self._current is not None:
                self.turns.append(bytes(self._current))
                self._current = None
        await super().push_frame(frame, direction)


class FileTransport(BaseTransport):
    def __init__(self, script: CallerScript, params: TransportParams | None = None):
        super().__init__()
        self._params = params or TransportParams(audio_in_enabled=True, audio_out_enabled=True)
        self._input = FileInputTransport(script, self._params)
        self._output = FileOutputTransport(self._params)

    def input(self) -> FileInputTransport:
        return self._input

    def output(self) -> FileOutputTransport:
        return self._output
