"""Silero VAD for calls: on the event loop, and not run on near-silence.

Pipecat's analyzer hands every input frame to a thread executor (two thread switches per
20 ms frame per call) and runs the model on every 32 ms window, ~0.2–0.4 ms of CPU each. A call
is mostly one side quiet: once the VAD has decided the user is quiet, windows below
``quiet_dbfs`` (far below speech; Pipecat's own ``min_volume`` would reject them after the model
ran) score 0 without the model, and the model's recurrent state restarts after them — as
Pipecat resets it during non-speech.
The window left runs inline: shorter than the executor round trip it replaces.
"""

from __future__ import annotations

import numpy as np
from pipecat.audio.utils import exp_smoothing
from pipecat.audio.vad.silero import SileroVADAnalyzer
from pipecat.audio.vad.vad_analyzer import VADParams, VADState

QUIET_DBFS = -50.0  # peak level: below any speech, above digital silence and line hiss


class GatedSileroVAD(SileroVADAnalyzer):
    def __init__(self, *, params: VADParams | None = None, quiet_dbfs: float = QUIET_DBFS):
        super().__init__(params=params)
        self._quiet_peak = int(32768 * 10 ** (quiet_dbfs / 20))
        self._quiet = False
        self._caught_up = True
        self.windows = 0  # scored windows, and how many of them skipped the model
        self.skipped = 0

    async def analyze_audio(self, buffer: bytes) -> VADState:
        state: VADState = self._run_analyzer(buffer)
        return state

    def voice_confidence(self, buffer: bytes) -> float:
        self.windows += 1
        # Only once the VAD itself has decided the user is quiet: speech tails and pauses are
        # still scored by the model, so turn ends fall exactly where Silero puts them.
        if self._vad_state == VADState.QUIET and self._is_quiet(buffer):
            if not self._quiet:
                self._model.reset_states()
                self._quiet = True
            self.skipped += 1
            return 0.0
        self._quiet = False
        confidence: float = super().voice_confidence(buffer)
        return confidence

    def _is_quiet(self, buffer: bytes) -> bool:
        # Peak, not RMS: cheaper, and stricter (every sample is below the level).
        samples = np.frombuffer(buffer, np.int16)
        return bool(samples.size) and int(np.abs(samples).max()) < self._quiet_peak

    def _get_smoothed_volume(self, audio: bytes) -> float:
        if not self._quiet:
            if self._caught_up is False:
                # First window after a skipped stretch: resume smoothing from the window's
                # measured level, where the unskipped analyzer would be by now.
                self._prev_volume = self._volume_tracker.volume
                self._caught_up = True
            volume: float = super()._get_smoothed_volume(audio)
            return volume
        self._caught_up = False
        # A skipped window is silent: its loudness reads 0, without measuring the tracker's
        # 400 ms window (BS.1770 loudness, the other per-window cost). The audio still
        # enters the window, so the first reading after the silence is the same.
        self._volume_tracker.update(audio, self.sample_rate)
        return exp_smoothing(0.0, self._prev_volume, self._smoothing_factor)
