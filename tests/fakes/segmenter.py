"""Energy-VAD utterance segmentation for the fake Deepgram endpoint.

Frames of ``frame_ms`` mono 16-bit audio count as speech when their RMS level is
at least ``speech_rms_threshold``. Audio is buffered from ``preroll_ms`` before
the first speech frame; an utterance closes after ``endpoint_ms`` of silence
following speech (or when the caller cuts it, e.g. on ``Finalize``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from .audio import first_channel, rms

JSON = dict[str, Any]


class SegmenterOptions(Protocol):
    @property
    def speech_rms_threshold(self) -> float: ...
    @property
    def frame_ms(self) -> int: ...
    @property
    def preroll_ms(self) -> int: ...


@dataclass
class Utterance:
    pcm: bytes
    start: int  # first sample of the buffered audio
    speech_start: int | None
    speech_end: int | None


@dataclass
class Event:
    kind: str  # "utterance" | "speech_started" | "utterance_end"
    utterance: Utterance | None = None
    time_s: float = 0.0


class Segmenter:
    """Energy-VAD endpointing over a stream of 16-bit PCM (see module docstring)."""

    def __init__(
        self,
        opts: SegmenterOptions,
        sample_rate: int,
        channels: int,
        endpoint_ms: int | None,
        utterance_end_ms: int | None,
    ) -> None:
        self.opts, self.rate, self.channels = opts, sample_rate, channels
        self.endpoint_ms, self.utterance_end_ms = endpoint_ms, utterance_end_ms
        self.frame_bytes = 2 * max(1, sample_rate * opts.frame_ms // 1000)
        self.raw = bytearray()  # bytes not yet split into whole multichannel samples
        self.pending = bytearray()  # mono bytes not yet a whole analysis frame
        self.seg = bytearray()
        self.seg_start = 0
        self.pos = 0  # mono samples appended to ``seg`` so far (stream position)
        self.speech_start: int | None = None
        self.speech_end: int | None = None
        self.in_speech = False
        self.utterance_end_due: float | None = None

    def feed(self, data: bytes) -> list[Event]:
        self.raw += data
        usable = len(self.raw) - len(self.raw) % (2 * self.channels)
        self.pending += first_channel(bytes(self.raw[:usable]), self.channels)
        del self.raw[:usable]
        events: list[Event] = []
        while len(self.pending) >= self.frame_bytes:
            frame = bytes(self.pending[: self.frame_bytes])
            del self.pending[: self.frame_bytes]
            start = self.pos
            self.pos += len(frame) // 2
            self.seg += frame
            if rms(frame) >= self.opts.speech_rms_threshold:
                if not self.in_speech:
                    events.append(Event("speech_started", time_s=start / self.rate))
                self.in_speech = True
                self.speech_start = start if self.speech_start is None else self.speech_start
                self.speech_end = self.pos
                self.utterance_end_due = None
            else:
                self.in_speech = False
                if self.speech_end is None:
                    keep = 2 * (self.rate * self.opts.preroll_ms // 1000)
                    if len(self.seg) > keep:
                        drop = len(self.seg) - keep
                        del self.seg[:drop]
                        self.seg_start += drop // 2
                elif (
                    self.endpoint_ms is not None
                    and (self.pos - self.speech_end) * 1000 >= self.endpoint_ms * self.rate
                ):
                    events.append(Event("utterance", self.cut()))
            due = self.utterance_end_due
            ue_ms = self.utterance_end_ms
            if due is not None and ue_ms is not None and self.pos / self.rate - due >= ue_ms / 1000:
                events.append(Event("utterance_end", time_s=due))
                self.utterance_end_due = None
        return events

    def cut(self, flush: bool = False) -> Utterance:
        """Close the current utterance (``flush``: include a trailing partial frame)."""
        if flush:
            self.seg += self.pending
            self.pos += len(self.pending) // 2
            self.pending.clear()
        utterance = Utterance(bytes(self.seg), self.seg_start, self.speech_start, self.speech_end)
        self.seg.clear()
        self.seg_start = self.pos
        self.speech_start = self.speech_end = None
        return utterance


def words_json(text: str, start_s: float, end_s: float, language: str | None) -> list[JSON]:
    tokens = text.split()
    step = (end_s - start_s) / max(1, len(tokens))
    words: list[JSON] = []
    for i, token in enumerate(tokens):
        word: JSON = {
            "word": token.strip(".,!?;:\"'").lower() or token,
            "start": round(start_s + i * step, 3),
            "end": round(start_s + (i + 1) * step, 3),
            "confidence": 0.99,
            "punctuated_word": token,
        }
        if language:
            word["language"] = language
        words.append(word)
    return words
