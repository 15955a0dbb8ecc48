"""Voice-to-voice latency: Parley's pipeline against its floor and against raw Pipecat.

(a) Fully local stack (Whisper tiny.en, SmolLM2-135M, Piper), one question per session so every
    turn starts from the same state. Its floor is measured in the same run, each stage alone:
    VAD stop time + Whisper on the utterance + LLM first token (a separate llama.cpp context with
    the same system-prompt prefix cached) + Piper's time to the first audio of the reply's first
    piece.
(b) Providers simulated with fixed latencies (STT final 150 ms, LLM first token 250 ms, TTS first
    audio 120 ms) behind the real Groq service classes and a fixed-latency TTS, run through
    Parley's pipeline and through a minimal raw Pipecat pipeline with the same transport, VAD and
    turn strategy; the difference of the medians is Parley's own overhead.

Run: .venv/bin/python bench/voice_latency.py [--turns 10]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
from pipecat.frames.frames import TTSAudioRawFrame  # noqa: E402
from pipecat.services.settings import TTSSettings  # noqa: E402
from pipecat.services.tts_service import TTSService  # noqa: E402

from agents.file.demo import speak_to_wav  # noqa: E402
from agents.file.session import measured_latencies, talk  # noqa: E402
from parley import log  # noqa: E402
from parley.audio import read_wav  # noqa: E402
from parley.config import AgentConfig, load_agent  # noqa: E402
from parley.settings import Settings  # noqa: E402
from pipelines.registry import Services, build_services, prewarm  # noqa: E402
from pipelines.speech_text import FirstClauseAggregator  # noqa: E402

QUESTIONS = [
    "What are your opening hours on Saturday?",
    "How much does a check-up cost?",
    "Where is the clinic?",
    "Can I book a cleaning next Tuesday?",
    "Do you treat children?",
    "Is there parking near the clinic?",
    "Are you open on Sunday?",
    "How long does a check-up take?",
    "Do you offer teeth whitening?",
    "Can I cancel my appointment?",
    "What should I bring to my first visit?",
    "Do you take new patients?",
]


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def row(name: str, values: list[float]) -> str:
    p50, p90 = pct(values, 50), pct(values, 90)
    return f"{name:<36} p50 {p50:7.0f} ms   p90 {p90:7.0f} ms   n={len(values)}"


# --- (a) local stack against its floor -------------------------------------------------------


def local_agent() -> AgentConfig:
    base = load_agent("dental").model_dump()
    base.update(greeting=None, tools=[])
    base["llm"]["max_tokens"] = 60  # answers long enough to measure, short enough to wait for
    for kind in ("stt", "llm", "tts"):
        base[kind]["provider"] = "local"
    return AgentConfig.model_validate(base)


def floor_stt(pcm: bytes) -> tuple[float, str]:
    from pipelines.services.local.models import whisper_path
    from pipelines.services.local.stt import _GreedyWhisper, whisper_model

    model = _GreedyWhisper(whisper_model(str(whisper_path())))
    audio = np.frombuffer(pcm + bytes(int(16000 * 0.2) * 2), dtype="<i2").astype(np.float32)
    t0 = time.perf_counter()
    segments, _ = model.transcribe(audio / 32768.0, language="en")
    text = " ".join(s.text for s in segments).strip()
    return (time.perf_counter() - t0) * 1000, text


def floor_llm(llama: Any, agent: AgentConfig, text: str) -> float:
    from pipelines.services.local.llm import to_llama_messages

    messages = to_llama_messages(
        [{"role": "system", "content": agent.system_prompt}, {"role": "user", "content": text}]
    )
    t0 = time.perf_counter()
    for chunk in llama.create_chat_completion(
        messages=messages,
        stream=True,
        max_tokens=agent.llm.max_tokens,
        temperature=agent.llm.temperature,
        repeat_penalty=1.15,
    ):
        if chunk["choices"][0]["delta"].get("content"):
            return (time.perf_counter() - t0) * 1000
    return float("nan")


async def first_piece(reply: str) -> str:
    agg = FirstClauseAggregator()
    for word in reply.split(" "):
        async for piece in agg.aggregate(word + " "):
            return piece.text
    tail = await agg.flush()
    return tail.text if tail else reply


def floor_tts(voice: Any, text: str) -> float:
    t0 = time.perf_counter()
    next(iter(voice.synthesize(text)))
    return (time.perf_counter() - t0) * 1000


async def bench_local(turns: int, settings: Settings, wavs: list[Path]) -> dict[str, Any]:
    from llama_cpp import Llama
    from llama_cpp.llama_cache import LlamaRAMCache

    from pipelines.services.local.llm import CONTEXT_TOKENS, llama_threads, to_llama_messages
    from pipelines.services.local.models import piper_voice_path, smollm_path
    from pipelines.services.local.tts import piper_voice

    agent = local_agent()
    await asyncio.to_thread(prewarm, agent, settings)
    v2v: list[float] = []
    vad_v2v: list[float] = []
    replies: list[str] = []
    for i, wav in enumerate(wavs[:turns]):
        out = Path(tempfile.mkdtemp(prefix="bench-local-"))
        result = await talk(agent, [wav], out, settings)
        reply = next((t for t in result.turns if t.role == "assistant" and t.latency), None)
        if (
            reply
            and reply.latency
            and reply.latency.voice_to_voice_ms
            and result.measured_voice_to_voice_ms
        ):
            v2v.append(result.measured_voice_to_voice_ms[0])
            vad_v2v.append(reply.latency.voice_to_voice_ms)
            replies.append(reply.text)
            print(f"  local turn {i + 1}: {reply.latency}", flush=True)
    # The floor's LLM: its own llama.cpp context holding only the system-prompt prefix, as the
    # pipeline's had at the start of each session.
    llama = Llama(
        model_path=str(smollm_path()),
        n_ctx=CONTEXT_TOKENS,
        n_threads=llama_threads(),
        verbose=False,
    )
    llama.set_cache(LlamaRAMCache(capacity_bytes=256 << 20))
    llama.create_chat_completion(
        messages=to_llama_messages([{"role": "system", "content": agent.system_prompt}]),
        max_tokens=1,
    )
    voice = piper_voice(str(piper_voice_path(None, settings.data_dir / "voices")))
    floors, parts = [], {"vad": [], "stt": [], "llm": [], "tts": []}
    for wav, reply in zip(wavs, replies, strict=False):
        stt_ms, text = floor_stt(read_wav(wav, 16000).data)
        llm_ms = floor_llm(llama, agent, text)
        tts_ms = floor_tts(voice, await first_piece(reply))
        vad_ms = agent.turns.vad_stop_secs * 1000
        for k, v in zip(parts, (vad_ms, stt_ms, llm_ms, tts_ms), strict=True):
            parts[k].append(v)
        floors.append(vad_ms + stt_ms + llm_ms + tts_ms)
    llama.close()
    ratios = [a / b for a, b in zip(v2v, floors, strict=False)]
    return {"v2v": v2v, "vad_v2v": vad_v2v, "floor": floors, "ratios": ratios, "parts": parts}


# --- (b) simulated providers: Parley vs raw Pipecat ----------------------------------------


class FixedLatencyTTS(TTSService):
    """Answers every piece of text after ``latency`` seconds with 0.4 s of a quiet tone."""

    def __init__(self, latency: float, **kw: Any) -> None:
        super().__init__(
            push_start_frame=True,
            push_stop_frames=True,
            settings=TTSSettings(model=None, voice="fake", language=None),
            **kw,
        )
        self._latency = latency

    async def run_tts(self, text: str, context_id: str) -> Any:
        await asyncio.sleep(self._latency)
        n = int(self.sample_rate * 0.4)
        tone = (np.sin(np.arange(n) * 2 * np.pi * 220 / self.sample_rate) * 3000).astype("<i2")
        yield TTSAudioRawFrame(tone.tobytes(), self.sample_rate, 1, context_id=context_id)


async def run_raw_pipecat(agent: AgentConfig, wavs: list[Path], services: Services) -> list[float]:
    """The minimal Pipecat pipeline: same services, transport, VAD and turn stop strategy."""
    from pipecat.audio.vad.silero import SileroVADAnalyzer
    from pipecat.audio.vad.vad_analyzer import VADParams
    from pipecat.pipeline.pipeline import Pipeline
    from pipecat.pipeline.worker import PipelineParams, PipelineWorker
    from pipecat.processors.aggregators.llm_context import LLMContext
    from pipecat.processors.aggregators.llm_response_universal import (
        LLMContextAggregatorPair,
        LLMUserAggregatorParams,
    )
    from pipecat.turns.user_stop import SpeechTimeoutUserTurnStopStrategy
    from pipecat.turns.user_turn_strategies import UserTurnStrategies
    from pipecat.workers.runner import WorkerRunner

    from agents.file.transport import CallerScript, FileTransport
    from pipelines.transcript import LatencyObserver

    script = CallerScript([read_wav(w, 16000) for w in wavs], wait_for_greeting=False)
    transport = FileTransport(script)
    pair = LLMContextAggregatorPair(
        LLMContext(),
        user_params=LLMUserAggregatorParams(
            vad_analyzer=SileroVADAnalyzer(params=VADParams(stop_secs=agent.turns.vad_stop_secs)),
            user_turn_strategies=UserTurnStrategies(
                stop=[SpeechTimeoutUserTurnStopStrategy(user_speech_timeout=0.0)]
            ),
        ),
    )
    pipeline = Pipeline(
        [
            transport.input(),
            services.stt,
            pair.user(),
            services.llm,
            services.tts,
            transport.output(),
            pair.assistant(),
        ]
    )
    observer = LatencyObserver()
    worker = PipelineWorker(
        pipeline,
        params=PipelineParams(audio_out_sample_rate=24000),
        observers=[observer],
        enable_rtvi=False,
        idle_timeout_secs=None,
    )
    runner = WorkerRunner(handle_sigint=False)
    await runner.add_workers(worker)
    await runner.run()
    return measured_latencies(script.speech_end_times, transport.output().turn_start_times)


async def bench_simulated(turns: int, wavs: list[Path], settings: Settings) -> dict[str, Any]:
    from tests.fakes import FakeCloud, Script

    text = "What are your opening hours on Saturday?"
    answer = "We are open from nine to one on Saturday. See you soon."

    def stt(_wav: bytes) -> str:
        time.sleep(0.150)
        return text

    script = Script(default=answer, first_token_delay_s=0.250)
    agent = local_agent().model_copy(
        update={
            "stt": local_agent().stt.model_copy(update={"provider": "groq"}),
            "llm": local_agent().llm.model_copy(update={"provider": "groq"}),
        }
    )
    results: dict[str, list[float]] = {"parley": [], "raw": []}
    with FakeCloud(script, transcribe=stt) as cloud:
        s = settings.model_copy(
            update={"groq_api_key": "test-key", "groq_base_url": cloud.groq_base_url}
        )
        utterances = (wavs * 3)[:turns]
        halves = [utterances[: turns // 2], utterances[turns // 2 :]]
        # Interleaved raw/Parley/raw/Parley, so drift on the machine hits both alike.
        for half, name in [(h, n) for h in halves for n in ("raw", "parley")]:
            built = build_services(agent, s)
            services = Services(built.stt, built.llm, FixedLatencyTTS(0.120), built.providers)
            if name == "raw":
                results[name] += await run_raw_pipecat(agent, half, services)
            else:
                out = Path(tempfile.mkdtemp(prefix="bench-sim-"))
                r = await talk(agent, half, out, s, services=services)
                results[name] += r.measured_voice_to_voice_ms
            print(f"  simulated {name}: {len(results[name])} turns", flush=True)
    return results


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--turns", type=int, default=10)
    ap.add_argument("--only", choices=["local", "simulated"], default=None)
    args = ap.parse_args()
    log.configure("WARNING")
    settings = Settings(data_dir=Path(tempfile.mkdtemp(prefix="bench-")))
    wav_dir = Path(tempfile.mkdtemp(prefix="bench-wavs-"))
    wavs = [speak_to_wav(q, wav_dir / f"q{i}.wav", settings) for i, q in enumerate(QUESTIONS)]
    print(f"machine: {__import__('os').cpu_count()} cores; turns per measurement: {args.turns}")

    if args.only != "local":
        await report_simulated(args.turns, wavs, settings)
    if args.only != "simulated":
        await report_local(args.turns, wavs, settings)


async def report_simulated(turns: int, wavs: list[Path], settings: Settings) -> None:
    sim = await bench_simulated(turns, wavs, settings)
    print("\n(b) simulated providers (STT 150 ms, LLM first token 250 ms, TTS 120 ms)")
    print(row("raw Pipecat pipeline v2v (measured)", sim["raw"]))
    print(row("Parley pipeline v2v (measured)", sim["parley"]))
    overhead = statistics.median(sim["parley"]) - statistics.median(sim["raw"])
    print(f"Parley overhead (difference of medians): {overhead:+.0f} ms")


async def report_local(turns: int, wavs: list[Path], settings: Settings) -> None:
    loc = await bench_local(turns, settings, wavs)
    print("\n(a) fully local stack")
    print(row("Parley local v2v (measured)", loc["v2v"]))
    print(row("Parley local v2v (VAD-based)", loc["vad_v2v"]))
    print(row("floor (stages alone, summed)", loc["floor"]))
    for k, v in loc["parts"].items():
        print(row(f"  floor part: {k}", v))
    of_medians = statistics.median(loc["v2v"]) / statistics.median(loc["floor"])
    print(
        f"ratio v2v/floor: median {statistics.median(loc['ratios']):.2f}  "
        f"(ratio of medians {of_medians:.2f})"
    )


if __name__ == "__main__":
    asyncio.run(main())
