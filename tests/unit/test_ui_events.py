"""UI events for the browser: the per-turn latency as an RTVI server-message, sent through a
real Pipecat worker with RTVI on, and the ``rtvi`` switch of ``build_session``."""

from __future__ import annotations

import asyncio

import pytest
from pipecat.frames.frames import EndFrame, Frame, OutputTransportMessageUrgentFrame
from pipecat.pipeline.pipeline import Pipeline
from pipecat.pipeline.worker import PipelineWorker
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
from pipecat.processors.frameworks.rtvi import RTVIProcessor
from pipecat.workers.runner import WorkerRunner

from agents.file.transport import CallerScript, FileTransport
from pipelines.graph import build_session
from pipelines.registry import Services
from pipelines.transcript import Latency, Turn
from pipelines.ui import UiEvents, latency_message
from tests.conftest import make_agent


def _reply(latency: Latency | None, index: int = 3) -> Turn:
    return Turn(index, "assistant", "Paris.", "t0", "t1", latency=latency)


def test_latency_message_gives_each_stage_its_own_duration() -> None:
    turn = _reply(Latency(310.4, 590.0, 840.6, 1040.2))
    assert latency_message(turn) == {
        "type": "latency",
        "turn": 3,
        "voice_to_voice_ms": 1040,
        "stt_ms": 310,
        "llm_ms": 280,  # transcript → first token
        "tts_ms": 251,  # first token → first audio
    }


def test_latency_message_missing_stages_and_turns_without_latency() -> None:
    partial = latency_message(_reply(Latency(None, 400.0, None, 900.0)))
    assert partial is not None
    assert (partial["stt_ms"], partial["llm_ms"], partial["tts_ms"]) == (None, 400, None)
    assert latency_message(_reply(None)) is None  # e.g. the greeting
    assert latency_message(Turn(0, "user", "hi", "t0", "t1", latency=Latency(1, 2, 3, 4))) is None


class _Capture(FrameProcessor):
    def __init__(self) -> None:
        super().__init__()
        self.messages: asyncio.Queue[object] = asyncio.Queue()

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, OutputTransportMessageUrgentFrame):
            self.messages.put_nowait(frame.message)
        await self.push_frame(frame, direction)


async def test_latency_reaches_the_transport_as_an_rtvi_server_message() -> None:
    capture = _Capture()
    worker = PipelineWorker(Pipeline([capture]), enable_rtvi=True, cancel_on_idle_timeout=False)
    ui = UiEvents()
    ui.attach(worker)
    recorded: list[Turn] = []

    async def db_sink(turn: Turn) -> None:
        recorded.append(turn)

    sink = ui.sink(db_sink)
    started = asyncio.Event()
    worker.add_event_handler("on_pipeline_started", lambda *_: started.set())

    async def drive() -> object:
        await asyncio.wait_for(started.wait(), 5)
        await sink(Turn(0, "user", "Capital of France?", "t0", "t1"))
        turn = _reply(Latency(300.0, 500.0, 700.0, 900.0), index=1)
        await sink(turn)
        message = await asyncio.wait_for(capture.messages.get(), 5)
        await worker.queue_frame(EndFrame())
        return message

    runner = WorkerRunner(handle_sigint=False)
    await runner.add_workers(worker)
    _, message = await asyncio.gather(runner.run(), drive())
    assert message == {
        "label": "rtvi-ai",
        "type": "server-message",
        "data": {
            "type": "latency",
            "turn": 1,
            "voice_to_voice_ms": 900,
            "stt_ms": 300,
            "llm_ms": 200,
            "tts_ms": 200,
        },
    }
    assert capture.messages.empty()  # the user turn sent nothing
    assert [t.index for t in recorded] == [0, 1]  # the wrapped sink still gets every turn


async def test_a_failed_send_does_not_lose_the_turn() -> None:
    class Broken(UiEvents):
        async def send(self, data: dict[str, object]) -> None:
            raise RuntimeError("transport gone")

    recorded: list[Turn] = []

    async def db_sink(turn: Turn) -> None:
        recorded.append(turn)

    await Broken().sink(db_sink)(_reply(Latency(1.0, 2.0, 3.0, 4.0)))
    assert len(recorded) == 1


def _cloud_services() -> Services:
    # Constructed, never called: far quicker to build than the local models.
    from pipecat.services.deepgram.stt import DeepgramSTTService
    from pipecat.services.deepgram.tts import DeepgramTTSService
    from pipecat.services.groq.llm import GroqLLMService

    return Services(
        stt=DeepgramSTTService(api_key="x"),
        llm=GroqLLMService(api_key="x"),
        tts=DeepgramTTSService(api_key="x"),
        providers={},
    )


def test_build_session_rtvi_switch() -> None:
    agent = make_agent()
    plain = build_session(agent, FileTransport(CallerScript([])), _cloud_services())
    with pytest.raises(Exception, match="RTVI is not enabled"):
        _ = plain.worker.rtvi
    browser = build_session(agent, FileTransport(CallerScript([])), _cloud_services(), rtvi=True)
    assert isinstance(browser.worker.rtvi, RTVIProcessor)
