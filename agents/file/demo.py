"""The offline demo: a question spoken by Piper goes to an agent through the real pipeline."""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path

from agents.file.session import TalkResult, talk
from parley.audio import write_wav
from parley.config import AgentConfig
from parley.settings import Settings


def speak_to_wav(text: str, path: Path, settings: Settings, voice: str | None = None) -> Path:
    """Synthesize ``text`` with the local Piper voice into a WAV file (the user's question)."""
    from pipelines.services.local.models import piper_voice_path
    from pipelines.services.local.tts import piper_voice, synthesize

    voice_path = str(piper_voice_path(voice, settings.data_dir / "voices"))
    pcm = b"".join(synthesize(voice_path, text))
    path.parent.mkdir(parents=True, exist_ok=True)
    write_wav(path, pcm, piper_voice(voice_path).config.sample_rate)
    return path


def spoken(text: str, settings: Settings) -> Path:
    """``text`` spoken by the bundled voice, as a WAV cached under the data dir."""
    digest = hashlib.sha1(text.encode()).hexdigest()[:16]
    path = settings.data_dir / "speech" / f"{digest}.wav"
    return path if path.exists() else speak_to_wav(text, path, settings)


async def run_demo(agent: AgentConfig, question: str, out: Path, settings: Settings) -> TalkResult:
    wav = await asyncio.to_thread(speak_to_wav, question, out / "question.wav", settings)
    return await talk(agent, [wav], out, settings)
