"""Cancels a ``Room.connect`` while it is in flight, then stays alive past livekit-ffi's 15 s
wait for the ready handshake, and joins a second room.

Run inside the namespace: ``python -m tests.livekit.clients.cancel_connect [--guard] --room R``.
Without ``--guard`` the SDK's panic handler SIGTERMs this process (livekit/python-sdks#784);
with it (``agents.livekit.room_guard``) the process survives. Prints JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import time

from livekit import rtc

from tests.livekit.clients.common import emit, log, server, token


async def main(args: argparse.Namespace) -> None:
    if args.guard:
        from agents.livekit import room_guard

        room_guard.install()
    url = server()[0]
    room = rtc.Room()
    started = time.monotonic()
    task = asyncio.create_task(room.connect(url, token("cancelled", args.room)))
    await asyncio.sleep(0)  # the connect request is now with the FFI, awaiting its callback
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    cancel_s = round(time.monotonic() - started, 2)
    log(f"connect cancelled after {cancel_s} s; waiting {args.wait} s")
    await asyncio.sleep(args.wait)
    second = rtc.Room()
    await second.connect(url, token("second", args.room))
    joined = second.isconnected()
    await second.disconnect()
    emit(
        {
            "cancel_returned_s": cancel_s,
            "first_room_connected": room.isconnected(),
            "alive_after_s": round(time.monotonic() - started, 1),
            "second_room_joined": joined,
        }
    )


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--room", required=True)
    p.add_argument("--guard", action="store_true")
    p.add_argument("--wait", type=float, default=17.0)
    asyncio.run(main(p.parse_args()))
