"""Makes ``rtc.Room.connect`` safe to cancel.

livekit-ffi answers a connect request, then waits (15 s) for the ``ReadyForRoomEventRequest``
that only the last line of the Python ``Room.connect`` sends. A call hung up while its room is
still connecting cancels ``connect`` before that line, the FFI reports a panic, and the SDK
answers every panic with SIGTERM to the whole process (livekit/python-sdks#784) — every call
sharing that process dies with it. The guard lets an interrupted connect finish its handshake,
then leaves the room, and only then lets the cancellation through.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from livekit import rtc

_installed = False


def install() -> None:
    """Patch ``rtc.Room.connect`` once per process (idempotent)."""
    global _installed
    if _installed:
        return
    original = rtc.Room.connect

    async def connect(self: rtc.Room, url: str, token: str, *args: Any, **kwargs: Any) -> None:
        task = asyncio.ensure_future(original(self, url, token, *args, **kwargs))
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError:
            await _settle(self, task)
            raise

    rtc.Room.connect = connect  # type: ignore[method-assign]
    _installed = True


async def _settle(room: rtc.Room, task: asyncio.Future[None]) -> None:
    """Wait out the interrupted connect (re-cancels are absorbed), then disconnect."""
    while not task.done():
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait([task])  # never raises the task's own error
    if not task.cancelled() and task.exception() is None:
        with contextlib.suppress(Exception):
            await room.disconnect()
