"""Audio frames skip Pipecat's observer fan-out unless an observer may want them."""

from __future__ import annotations

from typing import Any

from pipecat.frames.frames import (
    InputAudioRawFrame,
    OutputAudioRawFrame,
    TextFrame,
    TTSAudioRawFrame,
)
from pipecat.observers.base_observer import BaseObserver, FrameProcessed, FramePushed
from pipecat.pipeline.pipeline import Pipeline
from pipecat.pipeline.worker import PipelineWorker
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor

from pipelines.observer_fanout import keep_audio_out_of_observers
from pipelines.transcript import LatencyObserver

PCM = b"\0\0" * 320


def _frames() -> list[Any]:
    return [
        InputAudioRawFrame(audio=PCM, sample_rate=16000, num_channels=1),
        OutputAudioRawFrame(audio=PCM, sample_rate=24000, num_channels=1),
        TTSAudioRawFrame(audio=PCM, sample_rate=24000, num_channels=1),
        TextFrame(text="hi"),
    ]


def _spied(worker: PipelineWorker) -> tuple[list[str], list[str]]:
    pushed: list[str] = []
    processed: list[str] = []

    async def push(data: FramePushed) -> None:
        pushed.append(type(data.frame).__name__)

    async def process(data: FrameProcessed) -> None:
        processed.append(type(data.frame).__name__)

    fanout: Any = worker._observer
    fanout.on_push_frame, fanout.on_process_frame = push, process
    keep_audio_out_of_observers(worker)
    return pushed, processed


async def _send(worker: PipelineWorker) -> None:
    fanout: Any = worker._observer
    p = FrameProcessor()
    for frame in _frames():
        await fanout.on_push_frame(
            FramePushed(
                source=p,
                destination=p,
                frame=frame,
                direction=FrameDirection.DOWNSTREAM,
                timestamp=0,
            )
        )
        await fanout.on_process_frame(
            FrameProcessed(
                processor=p, frame=frame, direction=FrameDirection.DOWNSTREAM, timestamp=0
            )
        )


async def test_known_observers_see_no_audio_but_tts_pushes() -> None:
    worker = PipelineWorker(
        Pipeline([FrameProcessor()]), observers=[LatencyObserver()], enable_turn_tracking=False
    )
    pushed, processed = _spied(worker)
    await _send(worker)
    assert pushed == ["TTSAudioRawFrame", "TextFrame"]
    assert processed == ["TextFrame"]


async def test_an_unknown_observer_gets_everything_even_when_added_later() -> None:
    worker = PipelineWorker(
        Pipeline([FrameProcessor()]), observers=[LatencyObserver()], enable_turn_tracking=False
    )
    pushed, processed = _spied(worker)
    worker._observer.add_observer(BaseObserver())
    await _send(worker)
    everything = ["InputAudioRawFrame", "OutputAudioRawFrame", "TTSAudioRawFrame", "TextFrame"]
    assert pushed == everything
    assert processed == everything
