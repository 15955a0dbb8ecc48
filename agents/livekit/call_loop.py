"""One event loop that serves every call of a worker process (the worker's ``--threads`` mode).

livekit-agents' thread executor gives each job a thread with an event loop of its own. Calls
that each spin their own loop pay twice: their threads hand the GIL back and forth every
frame, and livekit-ffi wakes each loop separately. Pipecat and the LiveKit SDK both run many
rooms on one loop, so the job's thread only hands its call to this loop and waits for it.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


class CallLoop:
    """A daemon thread running one event loop; ``run(coro)`` awaits ``coro`` there."""

    def __init__(self, name: str = "parley-calls") -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name=name, daemon=True)
        self._thread.start()

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        return self._loop

    async def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` on the call loop from any other loop; cancelling the caller cancels it
        there too, and waits until it has wound down (its cleanup writes the call's status)."""
        done: concurrent.futures.Future[T] = concurrent.futures.Future()
        tasks: list[asyncio.Task[T]] = []

        def start() -> None:
            task = self._loop.create_task(coro)
            task.add_done_callback(lambda t: _settle(t, done))
            tasks.append(task)

        self._loop.call_soon_threadsafe(start)
        waiter = asyncio.wrap_future(done)
        try:
            return await asyncio.shield(waiter)
        except asyncio.CancelledError:
            # Scheduled after start() (the loop runs callbacks in order), so the task exists.
            self._loop.call_soon_threadsafe(lambda: tasks[0].cancel())
            await asyncio.wait([waiter])
            raise

    def stop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)


def _settle(task: asyncio.Task[T], done: concurrent.futures.Future[T]) -> None:
    """Hand a finished task's outcome to ``done`` (read from another thread)."""
    if task.cancelled():
        done.cancel()
    elif (err := task.exception()) is not None:
        done.set_exception(err)
    else:
        done.set_result(task.result())


_shared: CallLoop | None = None
_lock = threading.Lock()


def shared() -> CallLoop:
    """The process's call loop, started on first use."""
    global _shared
    with _lock:
        if _shared is None:
            _shared = CallLoop()
        return _shared
