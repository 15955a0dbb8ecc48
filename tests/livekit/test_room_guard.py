"""A hang-up while the agent's room is still connecting must not kill the worker process.

Both clients cancel a ``Room.connect`` in flight against the real server, then outlive
livekit-ffi's 15 s handshake wait: the unguarded one is SIGTERMed by the SDK's panic handler
(proving the hazard is real on this SDK), the guarded one lives and joins another room.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from tests.livekit.stack import LiveKitStack


def test_cancelled_connect_does_not_kill_the_process(
    livekit_stack: LiveKitStack, ns_client: Any
) -> None:
    room = f"guard-{int(time.time() * 1000)}"

    def run(guard: bool) -> Any:
        args = ["--room", f"{room}-{int(guard)}", *(["--guard"] if guard else [])]
        return ns_client(
            "tests.livekit.clients.cancel_connect", args, env=livekit_stack.env(), timeout=60
        )

    with ThreadPoolExecutor(2) as pool:
        guarded, unguarded = pool.submit(run, True), pool.submit(run, False)
        result = guarded.result()
        with pytest.raises(AssertionError, match="ReadyForRoomEventRequest"):
            unguarded.result()
    # The guard let the handshake finish (the cancel waited for it), then left the room.
    assert result["first_room_connected"] is False, result
    assert result["alive_after_s"] >= 17, result
    assert result["second_room_joined"] is True, result
