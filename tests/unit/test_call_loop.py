"""The worker's shared call loop: calls from job threads run on one loop, and a job that is
cancelled cancels its call there and waits for the call's own cleanup."""

from __future__ import annotations

import asyncio
import threading

from agents.livekit.call_loop import CallLoop


def test_calls_from_several_threads_share_one_loop() -> None:
    calls = CallLoop()
    seen: list[tuple[int, int]] = []

    async def call(n: int) -> int:
        await asyncio.sleep(0.01)
        seen.append((n, threading.get_ident()))
        return n * 2

    def job(n: int, out: list[int]) -> None:  # a job thread with a loop of its own
        out.append(asyncio.run(calls.run(call(n))))

    results: list[int] = []
    jobs = [threading.Thread(target=job, args=(n, results)) for n in range(4)]
    for t in jobs:
        t.start()
    for t in jobs:
        t.join(5)
    calls.stop()
    assert sorted(results) == [0, 2, 4, 6]
    assert len({ident for _, ident in seen}) == 1  # one call-loop thread served all four
    assert all(ident != threading.get_ident() for _, ident in seen)


def test_cancelling_the_job_cancels_the_call_after_its_cleanup() -> None:
    calls = CallLoop()
    events: list[str] = []
    started = threading.Event()

    async def call() -> str:
        try:
            started.set()
            await asyncio.sleep(30)
            return "completed"
        except asyncio.CancelledError:
            await asyncio.sleep(0.05)  # e.g. writing the call's final status
            events.append("call cleaned up")
            raise

    async def job() -> None:
        task = asyncio.ensure_future(calls.run(call()))
        await asyncio.to_thread(started.wait, 5)
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            events.append("job cancelled")

    asyncio.run(job())
    calls.stop()
    assert events == ["call cleaned up", "job cancelled"]
