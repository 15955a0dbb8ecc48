"""The per-call audio path: the gated VAD hears speech exactly like Pipecat's Silero analyzer
while skipping the model on silence, and input audio stops after the user aggregator."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
from pipecat.audio.vad.silero import SileroVADAnalyzer
from pipecat.audio.vad.vad_analyzer import VADAnalyzer, VADParams, VADState
from pipecat.frames.frames import InputAudioRawFrame, TextFrame
from pipecat.services.deepgram.stt import DeepgramSTTService
from pipecat.services.deepgram.tts import DeepgramTTSService
from pipecat.services.groq.llm import GroqLLMService
from pipecat.tests.utils import run_test

from agents.file.transport import CallerScript, FileTransport
from parley.audio import read_wav
from pipelines.graph import build_session
from pipelines.input_audio import InputAudioStop
from pipelines.registry import Services
from pipelines.vad import GatedSileroVAD
from tests.conftest import make_agent

RATE = 16000
FRAME = RATE // 50 * 2  # 20 ms of 16-bit mono


def _states(vad: VADAnalyzer, pcm: bytes) -> list[VADState]:
    vad.set_sample_rate(RATE)
    return [vad._run_analyzer(pcm[i : i + FRAME]) for i in range(0, len(pcm), FRAME)]


def _segments(states: list[VADState]) -> list[tuple[int, int]]:
    """(first frame, last frame) of each stretch the VAD committed to as speech: SPEAKING up
    to its return to QUIET (a STOPPING that turns back into SPEAKING stays inside)."""
    found: list[tuple[int, int]] = []
    start: int | None = None
    for i, state in enumerate(states):
        if state == VADState.SPEAKING and start is None:
            start = i
        elif state == VADState.QUIET and start is not None:
            found.append((start, i))
            start = None
    return found


def test_gated_vad_hears_speech_like_silero_and_skips_silence(
    speak: Callable[[str], Path],
) -> None:
    speech = read_wav(speak("Could you book me an appointment for Tuesday?"), RATE).data
    rng = np.random.default_rng(7)
    hiss = (rng.normal(0, 8, RATE * 2)).astype(np.int16).tobytes()  # ~-72 dBFS line noise
    pcm = bytes(RATE * 2) + speech + hiss + speech + bytes(RATE * 2)
    params = VADParams(stop_secs=0.4)
    plain = _segments(_states(SileroVADAnalyzer(params=params), pcm))
    gated_vad = GatedSileroVAD(params=params)
    gated = _segments(_states(gated_vad, pcm))
    # The same turns, starting and ending within two frames (40 ms) of Pipecat's analyzer: the
    # model restarts after a skipped stretch, so its scores inside speech may differ slightly.
    assert len(gated) == len(plain) == 2, (gated, plain)
    for (a0, a1), (b0, b1) in zip(gated, plain, strict=True):
        assert abs(a0 - b0) <= 2 and abs(a1 - b1) <= 2, (gated, plain)
    # 3 s of silence and 2 s of hiss: once the VAD said "quiet", those windows skip the model.
    quiet_windows = 5 * RATE // 512
    assert gated_vad.skipped >= 0.6 * quiet_windows, (gated_vad.skipped, gated_vad.windows)


async def test_input_audio_stops_here_other_frames_pass() -> None:
    audio = InputAudioRawFrame(audio=bytes(FRAME), sample_rate=RATE, num_channels=1)
    down, _ = await run_test(
        InputAudioStop(),
        frames_to_send=[audio, TextFrame(text="hi"), audio],
        expected_down_frames=[TextFrame],
    )
    assert down[0].text == "hi"


def test_build_session_stops_input_audio_right_after_the_user_aggregator() -> None:
    services = Services(  # constructed, never called
        stt=DeepgramSTTService(api_key="x"),
        llm=GroqLLMService(api_key="x"),
        tts=DeepgramTTSService(api_key="x"),
        providers={},
    )
    session = build_session(make_agent(), FileTransport(CallerScript([])), services)
    names = [type(p).__name__ for p in session.pipeline.processors]
    assert names[names.index("LLMUserAggregator") + 1] == "InputAudioStop", names
