"""Local fakes of third-party clouds speaking their real wire protocols (see ``cloud.py``)."""

from .audio import Transcriber, fixed_transcriber, pcm_to_wav, silence, tone, wav_to_pcm
from .cloud import FakeCloud
from .deepgram_api import DeepgramOptions, DeepgramSession
from .openai_api import TranscriptionCall
from .script import ParallelToolCalls, Reply, Rule, Script, TextReply, ToolCallReply
from .speech_api import SpeechCall, SpeechOptions, Synthesizer

__all__ = [
    "DeepgramOptions",
    "DeepgramSession",
    "FakeCloud",
    "ParallelToolCalls",
    "Reply",
    "Rule",
    "Script",
    "SpeechCall",
    "SpeechOptions",
    "Synthesizer",
    "TextReply",
    "ToolCallReply",
    "Transcriber",
    "TranscriptionCall",
    "fixed_transcriber",
    "pcm_to_wav",
    "silence",
    "tone",
    "wav_to_pcm",
]
