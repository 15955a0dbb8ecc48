"""The standard voice agent: VAD + STT → LLM with tools → TTS, with barge-in.

A graph is a function from :class:`~pipelines.parts.Parts` to an ordered processor list; a new
one is a short file like this, named in the agent config as ``pipeline: package.module:build``.
"""

from __future__ import annotations

from pipecat.processors.frame_processor import FrameProcessor

from pipelines.parts import Parts


def build(p: Parts) -> list[FrameProcessor]:
    return [
        p.transport.input(),
        p.stt,
        p.user,
        p.llm,
        p.speech_text,
        p.tts,
        p.transport.output(),
        p.assistant,
    ]
