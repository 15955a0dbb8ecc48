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
