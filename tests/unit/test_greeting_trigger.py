"""The greeting starts on a transport's early "caller can hear us" signal, after a short grace,
and only for transports that have that signal."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from pipecat.utils.base_object import BaseObject

from agents import runner


class _Transport(BaseObject):
    def __init__(self, *, early: bool) -> None:
        super().__init__()
        self._register_event_handler("on_client_connected")
        if early:
            self._register_event_handler(runner.CALLER_LISTENING)


class _Session:
    def __init__(self) -> None:
        self.greeted_at: list[float] = []

    async def greet(self) -> None:
        self.greeted_at.append(time.monotonic())


async def test_greets_after_the_grace_when_the_caller_can_hear() -> None:
    transport, session = _Transport(early=True), _Session()
    runner._greet_when_listening(transport, session)  # type: ignore[arg-type]
    fired = time.monotonic()
    await transport._call_event_handler(runner.CALLER_LISTENING)
    await asyncio.sleep(runner.LISTENING_GRACE_SECS + 0.1)
    assert len(session.greeted_at) == 1
    assert session.greeted_at[0] - fired >= runner.LISTENING_GRACE_SECS


async def test_transports_without_the_signal_are_left_alone() -> None:
    transport, session = _Transport(early=False), _Session()
    runner._greet_when_listening(transport, session)  # type: ignore[arg-type]
    handlers: dict[str, Any] = transport._event_handlers
    assert runner.CALLER_LISTENING not in handlers
    assert session.greeted_at == []


class _JoinedTransport:
    def __init__(self, joined: float) -> None:
        self.joined = joined

    def joined_at(self, participant_id: str) -> float | None:
        return self.joined if participant_id == "caller" else None


class _LatencySession:
    def __init__(self) -> None:
        from pipelines.transcript import LatencyObserver

        self.latency = LatencyObserver()


async def _first_audio(latency: Any) -> None:
    from pipecat.frames.frames import BotStartedSpeakingFrame
    from pipecat.observers.base_observer import FramePushed

    frame = BotStartedSpeakingFrame()
    data = FramePushed(source=None, destination=None, frame=frame, direction=None, timestamp=0)  # type: ignore[arg-type]
    data.first_push = True
    await latency.on_push_frame(data)


async def test_greeting_start_is_logged_against_the_servers_join_time() -> None:
    from loguru import logger

    lines: list[str] = []
    sink = logger.add(lambda m: lines.append(m.record["message"]), level="INFO")
    try:
        # Caller announced first, greeting audio after (a phone caller, a slow web caller).
        session = _LatencySession()
        joined = time.time() - 0.25
        runner._report_greeting(_JoinedTransport(joined), session, "caller")  # type: ignore[arg-type]
        await _first_audio(session.latency)
        # Greeting audio first (greeted on on_caller_listening), announcement after.
        early = _LatencySession()
        await _first_audio(early.latency)
        runner._report_greeting(_JoinedTransport(time.time() - 0.1), early, {"id": "caller"})  # type: ignore[arg-type]
        # A participant the transport does not know: nothing to report.
        unknown = _LatencySession()
        runner._report_greeting(_JoinedTransport(joined), unknown, "someone")  # type: ignore[arg-type]
        await _first_audio(unknown.latency)
    finally:
        logger.remove(sink)
    reported = [int(m.split()[2]) for m in lines if m.startswith("greeting started")]
    assert len(reported) == 2, lines
    assert 240 <= reported[0] < 400
    assert 90 <= reported[1] < 250


class _Store:
    def __init__(self) -> None:
        self.in_progress = 0

    async def mark_in_progress(self, _call: Any) -> None:
        self.in_progress += 1


class _Call:
    def __init__(self, direction: str, greeting: str | None) -> None:
        from parley.config import AgentConfig

        self.direction = direction
        self.agent = AgentConfig(name="a", system_prompt="p", greeting=greeting)


class _FollowedSession(_Session):
    def __init__(self) -> None:
        super().__init__()
        from pipelines.transcript import LatencyObserver

        self.latency = LatencyObserver()
        self.timers: list[asyncio.Task[None]] = []

    def add_timer(self, coro: Any) -> None:
        self.timers.append(asyncio.ensure_future(coro))


class _ConnectTransport(_Transport):
    def joined_at(self, _participant_id: str) -> float | None:
        return time.time()


async def test_every_call_goes_in_progress_when_the_caller_connects() -> None:
    # With or without a greeting, whatever the direction, and only once.
    for direction, greeting in [
        ("web", "Hi"),
        ("web", None),
        ("outbound", "Hi"),
        ("inbound", None),
    ]:
        store, session = _Store(), _FollowedSession()
        transport = _ConnectTransport(early=False)
        call = _Call(direction, greeting)
        runner._follow_caller(store, call, transport, session, 5.0)  # type: ignore[arg-type]
        await transport._call_event_handler("on_client_connected", {"id": "caller"})
        await transport._call_event_handler("on_client_connected", {"id": "caller"})
        await asyncio.sleep(0.05)
        assert store.in_progress == 1, (direction, greeting)
        assert len(session.greeted_at) == 1
        # Only calls with a greeting that the caller joined themselves report its start.
        reports = session.latency.on_first_audio is not None
        assert reports == (direction != "outbound" and greeting is not None), (direction, greeting)
        for t in session.timers:
            t.cancel()
