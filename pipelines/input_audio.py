"""Stops the caller's audio once the user aggregator has heard it.

Pipecat passes every input audio frame (50–100 a second) down the whole pipeline; past the
user aggregator (VAD, turn strategies) nothing in a voice graph reads it, yet each frame still
costs a queue hop in the LLM, text, TTS, output and assistant processors. Dropping it there
is the cheapest per-call saving on the 20 ms path.
"""

from __future__ import annotations

from pipecat.frames.frames import Frame, InputAudioRawFrame
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor


class InputAudioStop(FrameProcessor):
    """Drops input audio going downstream; everything else passes untouched (no queue)."""

    def __init__(self) -> None:
        super().__init__(name="InputAudioStop", enable_direct_mode=True)

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if direction == FrameDirection.DOWNSTREAM and isinstance(frame, InputAudioRawFrame):
            return
        await self.push_frame(frame, direction)


def stop_input_audio_after(processors: list[FrameProcessor], user: FrameProcessor) -> None:
    """Insert an :class:`InputAudioStop` right after ``user`` (when the graph has it)."""
    for i, processor in enumerate(processors):
        if processor is user:
            processors.insert(i + 1, InputAudioStop())
            return
