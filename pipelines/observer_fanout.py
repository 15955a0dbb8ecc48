"""Keeps the audio stream out of Pipecat's observer fan-out when no observer wants it.

``PipelineWorker`` hands each observer, through a queue and a task of its own, every frame each
processor handles (``on_process_frame``) and every frame's first push (``on_push_frame``). A
call's audio is 50 input frames a second plus the reply's chunks: with three observers and three
processors on the input path that is ~12 queue hops and task wake-ups per 20 ms frame, for
observers that return at once — ours need only a reply's first TTS chunk (latency), Pipecat's
RTVI observer ignores audio unless audio levels are on, its idle observer ignores audio.

Unknown observers (an agent developer's own) may want audio: then nothing is filtered.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from pipecat.frames.frames import InputAudioRawFrame, OutputAudioRawFrame, TTSAudioRawFrame
from pipecat.observers.base_observer import BaseObserver, FrameProcessed, FramePushed
from pipecat.pipeline.worker import IdleFrameObserver, PipelineWorker
from pipecat.processors.frameworks.rtvi.observer import RTVIObserver

from pipelines.transcript import LatencyObserver


def _wants_audio(observer: BaseObserver) -> bool:
    if isinstance(observer, RTVIObserver):
        params = observer._params
        return bool(params.user_audio_level_enabled or params.bot_audio_level_enabled)
    # LatencyObserver reads only first pushes of TTS audio, which still pass.
    return not isinstance(observer, LatencyObserver | IdleFrameObserver)


def keep_audio_out_of_observers(worker: PipelineWorker) -> None:
    """Skip input audio and non-TTS output audio in ``worker``'s observer fan-out (TTS audio is
    still pushed, processed-frame events of any audio are not) while every observer is one
    known to ignore them; observers added later are checked as they come."""
    fanout = worker._observer
    push: Callable[[FramePushed], Awaitable[None]] = fanout.on_push_frame
    processed: Callable[[FrameProcessed], Awaitable[None]] = fanout.on_process_frame
    known: list[int] = [-1]  # observer count the verdict below was made for
    skip = [False]

    def skipping() -> bool:
        observers: list[BaseObserver] = fanout._observers
        if len(observers) != known[0]:
            known[0], skip[0] = len(observers), not any(_wants_audio(o) for o in observers)
        return skip[0]

    async def on_push_frame(data: FramePushed) -> None:
        frame = data.frame
        if (
            isinstance(frame, InputAudioRawFrame)
            or (isinstance(frame, OutputAudioRawFrame) and not isinstance(frame, TTSAudioRawFrame))
        ) and skipping():
            return
        await push(data)

    async def on_process_frame(data: FrameProcessed) -> None:
        if isinstance(data.frame, InputAudioRawFrame | OutputAudioRawFrame) and skipping():
            return
        await processed(data)

    instance: Any = fanout  # instance attributes shadow the methods processors call
    instance.on_push_frame = on_push_frame
    instance.on_process_frame = on_process_frame
