"""Agent config + transport → a runnable Pipecat voice session.

Builds the parts (services, context aggregators with VAD and turn strategies, tools), lets the
agent's graph order them (``pipelines/voice.py`` by default), and wraps the result with what
every call needs: greeting, transcript and latency recording, idle timeout, maximum duration.

Runtimes in ``agents/`` (file harness, LiveKit worker, browser P2P, SIP) give a transport and
run the returned :class:`VoiceSession`; this module never imports them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any

import httpx
from loguru import logger
from pipecat.audio.vad.vad_analyzer import VADParams
from pipecat.frames.frames import EndFrame, TTSSpeakFrame
from pipecat.pipeline.pipeline import Pipeline
from pipecat.pipeline.worker import PipelineParams, PipelineWorker
from pipecat.processors.aggregators.llm_context import LLMContext
from pipecat.processors.aggregators.llm_response_universal import (
    LLMContextAggregatorPair,
    LLMUserAggregatorParams,
)
from pipecat.processors.aggregators.llm_text_processor import LLMTextProcessor
from pipecat.transports.base_transport import BaseTransport
from pipecat.turns.user_start import (
    MinWordsUserTurnStartStrategy,
    TranscriptionUserTurnStartStrategy,
    VADUserTurnStartStrategy,
)
from pipecat.turns.user_stop import (
    SpeechTimeoutUserTurnStopStrategy,
    TurnAnalyzerUserTurnStopStrategy,
)
from pipecat.turns.user_turn_strategies import UserTurnStrategies
from pipecat.workers.runner import WorkerRunner

from parley.config import AgentConfig, TurnTaking
from parley.settings import Settings, get_settings
from pipelines import catalog
from pipelines.input_audio import stop_input_audio_after
from pipelines.knowledge.retrieve import Retriever, install_knowledge
from pipelines.observer_fanout import keep_audio_out_of_observers
from pipelines.parts import Parts
from pipelines.registry import Services
from pipelines.speech_text import FirstClauseAggregator
from pipelines.tools import register_tools, tool_client, tools_schema
from pipelines.transcript import LatencyObserver, TranscriptRecorder, TurnSink
from pipelines.ui import UiEvents
from pipelines.vad import GatedSileroVAD

AUDIO_IN_RATE = 16000


def turn_strategies(turns: TurnTaking) -> UserTurnStrategies:
    if turns.min_words_to_interrupt > 0:
        start: list[Any] = [
            MinWordsUserTurnStartStrategy(
                min_words=turns.min_words_to_interrupt,
                enable_interruptions=turns.interruptions,
            )
        ]
    else:
        start = [
            VADUserTurnStartStrategy(enable_interruptions=turns.interruptions),
            TranscriptionUserTurnStartStrategy(enable_interruptions=turns.interruptions),
        ]
    if turns.smart_turn:
        from pipecat.audio.turn.smart_turn.local_smart_turn_v3 import LocalSmartTurnAnalyzerV3

        stop: list[Any] = [
            TurnAnalyzerUserTurnStopStrategy(turn_analyzer=LocalSmartTurnAnalyzerV3())
        ]
    else:
        # The VAD's stop_secs already is the pause policy: end the turn as soon as the final
        # transcript is in, instead of waiting another 0.6 s (Pipecat's default).
        stop = [SpeechTimeoutUserTurnStopStrategy(user_speech_timeout=0.0)]
    return UserTurnStrategies(start=start, stop=stop)


@dataclass
class VoiceSession:
    """A built pipeline plus what runtimes need around it: transcript, limits, end reason."""

    agent: AgentConfig
    pipeline: Pipeline
    worker: PipelineWorker
    context: LLMContext
    recorder: TranscriptRecorder
    latency: LatencyObserver
    providers: dict[str, str]
    http: httpx.AsyncClient
    end_reason: str = "completed"
    _greeted: bool = False
    _hang_up_reason: str | None = None
    _timers: list[asyncio.Task[None]] = field(default_factory=list)

    def add_timer(self, coro: Coroutine[Any, Any, None]) -> None:
        """A watchdog that lives as long as the call (cancelled when it ends)."""
        self._timers.append(asyncio.ensure_future(coro))

    async def hang_up(self, reason: str) -> None:
        """Stop now, dropping queued speech (nobody is left to hear it). The first reason
        wins (a peer that never connected is also reported as disconnected)."""
        if self._hang_up_reason is None:
            self._hang_up_reason = reason
        await self.worker.cancel(reason=reason)

    async def end(self, reason: str) -> None:
        """End gracefully: what is queued (e.g. a goodbye) is played first."""
        await self.worker.queue_frame(EndFrame(reason=reason))

    async def greet(self) -> None:
        """Speak the greeting (once), from the phrase cache when prewarmed."""
        if self.agent.greeting and not self._greeted:
            self._greeted = True
            await self.worker.queue_frame(TTSSpeakFrame(self.agent.greeting))

    async def run(self, *, greet: bool = True) -> None:
        """Run until the call ends (script done, end_call, idle timeout or max duration).

        ``greet=False``: the runtime calls :meth:`greet` when the caller is there (a room the
        agent joins first)."""
        self.recorder.start()
        self._timers.append(asyncio.create_task(self._max_duration()))
        if greet:
            await self.greet()  # spoken right after StartFrame
        try:
            runner = WorkerRunner(handle_sigint=False)
            await runner.add_workers(self.worker)
            await runner.run()
        finally:
            for t in self._timers:
                t.cancel()
            await self.recorder.close()
            await self.http.aclose()

    async def _max_duration(self) -> None:
        await asyncio.sleep(self.agent.max_duration_secs)
        logger.info("maximum call duration reached")
        await self.end("max_duration")


def build_session(
    agent: AgentConfig,
    transport: BaseTransport,
    services: Services,
    *,
    sink: TurnSink | None = None,
    audio_out_rate: int = 24000,
    observers: list[Any] | None = None,
    retriever: Retriever | None = None,
    rtvi: bool = False,
    settings: Settings | None = None,
) -> VoiceSession:
    """``retriever`` serves ``agent.knowledge`` (runtimes build it: pipelines has no database)."""
    # The system prompt is the LLM service's system_instruction (set by the provider factory).
    context = LLMContext(tools=tools_schema(agent) or _no_tools())
    aggregators = LLMContextAggregatorPair(
        context,
        user_params=LLMUserAggregatorParams(
            vad_analyzer=GatedSileroVAD(params=VADParams(stop_secs=agent.turns.vad_stop_secs)),
            user_turn_strategies=turn_strategies(agent.turns),
        ),
    )
    # Tools reach only what the egress policy allows (the operator's, for stored configs).
    http = tool_client(agent, settings or get_settings())
    register_tools(agent, services.llm, http)
    parts = Parts(
        agent=agent,
        transport=transport,
        stt=services.stt,
        user=aggregators.user(),
        llm=services.llm,
        speech_text=LLMTextProcessor(text_aggregator=FirstClauseAggregator()),
        tts=services.tts,
        assistant=aggregators.assistant(),
    )
    latency = LatencyObserver()
    # rtvi: a browser client gets Pipecat's RTVI events plus each turn's latency.
    ui = UiEvents() if rtvi else None
    recorder = TranscriptRecorder(latency, ui.sink(sink) if ui else sink)
    processors = catalog.graph(agent)(parts)
    install_knowledge(
        agent,
        retriever,
        processors=processors,
        user=parts.user,
        llm=services.llm,
        context=context,
        recorder=recorder,
    )
    stop_input_audio_after(processors, parts.user)
    pipeline = Pipeline(processors)
    worker = PipelineWorker(
        pipeline,
        params=PipelineParams(
            audio_in_sample_rate=AUDIO_IN_RATE,
            audio_out_sample_rate=audio_out_rate,
            enable_metrics=True,
        ),
        observers=[latency, *(observers or [])],
        idle_timeout_secs=agent.idle_timeout_secs,
        # Turns are recorded by our own recorder and LatencyObserver; Pipecat's turn tracker
        # only feeds its OpenTelemetry tracing, and as an observer it is handed every frame
        # every processor handles (50+ per second per processor on the audio path).
        enable_turn_tracking=False,
        cancel_on_idle_timeout=False,
        enable_rtvi=rtvi,
    )
    if ui is not None:
        ui.attach(worker)
    keep_audio_out_of_observers(worker)
    session = VoiceSession(
        agent, pipeline, worker, context, recorder, latency, services.providers, http
    )

    async def _user_turn(_agg: Any, _strategy: Any, message: Any) -> None:
        recorder.user(message.content or "", getattr(message, "timestamp", None))

    async def _assistant_turn(_agg: Any, message: Any) -> None:
        recorder.assistant(message.content or "", message.timestamp, message.interrupted)

    async def _idle(_worker: Any) -> None:
        logger.info("idle timeout: nobody spoke")
        await session.end("idle_timeout")

    async def _finished(_worker: Any, frame: Any) -> None:
        if type(frame).__name__ == "CancelFrame":
            # Ours (hang_up) or anyone else's (e.g. the runner shutting down).
            session.end_reason = session._hang_up_reason or "cancelled"
            return
        reason = getattr(frame, "reason", None)
        if isinstance(reason, str) and reason:
            session.end_reason = reason

    aggregators.user().add_event_handler("on_user_turn_stopped", _user_turn)
    aggregators.assistant().add_event_handler("on_assistant_turn_stopped", _assistant_turn)
    worker.add_event_handler("on_idle_timeout", _idle)
    worker.add_event_handler("on_pipeline_finished", _finished)
    return session


def _no_tools() -> Any:
    from pipecat.processors.aggregators.llm_context import NOT_GIVEN

    return NOT_GIVEN
