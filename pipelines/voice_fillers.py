"""The voice agent, plus a short filler ("One moment.") while a tool call keeps the caller waiting.

An example of a custom graph: the standard parts plus one processor. Use it with
``pipeline: voice_fillers`` in an agent config.
"""

from __future__ import annotations

from pipecat.frames.frames import (
    Frame,
    FunctionCallsStartedFrame,
    LLMFullResponseStartFrame,
    LLMTextFrame,
    TTSSpeakFrame,
)
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor

from pipelines import voice
from pipelines.parts import Parts

FILLER = "One moment."


class ToolFiller(FrameProcessor):
    """Speaks a filler when a response starts with tool calls and no words for the caller."""

    def __init__(self, text: str = FILLER) -> None:
        super().__init__()
        self._text = text
        self._said_something = False

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, LLMFullResponseStartFrame):
            self._said_something = False
        elif isinstance(frame, LLMTextFrame) and frame.text.strip():
            self._said_something = True
        elif isinstance(frame, FunctionCallsStartedFrame) and not self._said_something:
            await self.push_frame(frame, direction)
            await self.push_frame(TTSSpeakFrame(self._text, append_to_context=False))
            return
        await self.push_frame(frame, direction)


def build(p: Parts) -> list[FrameProcessor]:
    graph = voice.build(p)
    graph.insert(graph.index(p.llm) + 1, ToolFiller())
    return graph
