"""Helpers for Python LiveKit clients run inside the test namespace (``run_in_ns``).

Clients read the server and keys from ``LIVEKIT_URL``, ``LIVEKIT_API_KEY``, ``LIVEKIT_API_SECRET``
(``LiveKitStack.env()``), log to stderr and print one JSON object as their last stdout line.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

from livekit import api, rtc


def server() -> tuple[str, str, str]:
    """(url, api_key, api_secret) from the environment."""
    return (
        os.environ["LIVEKIT_URL"],
        os.environ["LIVEKIT_API_KEY"],
        os.environ["LIVEKIT_API_SECRET"],
    )


def token(identity: str, room: str) -> str:
    """A join token for ``room`` signed with the environment's keys."""
    _, key, secret = server()
    grants = api.VideoGrants(room_join=True, room=room)
    return api.AccessToken(key, secret).with_identity(identity).with_grants(grants).to_jwt()


async def ice_report(room: rtc.Room) -> dict[str, list[str]]:
    """Addresses of every ICE candidate the room's peer connections know, and of the pairs in use.

    ``{"candidates": [...], "selected": ["local -> remote", ...]}``: tests assert that they all
    lie in 10.213.0.0/24 (nothing may touch the machine's own interfaces).
    """
    stats = await room.get_rtc_stats()
    addresses: dict[str, str] = {}
    pairs = []
    for entry in [*stats.publisher_stats, *stats.subscriber_stats]:
        kind = entry.WhichOneof("stats")
        if kind in ("local_candidate", "remote_candidate"):
            cand = getattr(entry, kind)
            addresses[cand.rtc.id] = f"{cand.candidate.address}:{cand.candidate.port}"
        elif kind == "candidate_pair":
            pair = entry.candidate_pair.candidate_pair
            if pair.nominated:
                pairs.append((pair.local_candidate_id, pair.remote_candidate_id))
    selected = [f"{addresses.get(a, a)} -> {addresses.get(b, b)}" for a, b in pairs]
    return {"candidates": sorted(set(addresses.values())), "selected": selected}


def log(*parts: object) -> None:
    print(*parts, file=sys.stderr, flush=True)


def emit(result: dict[str, Any]) -> None:
    """Print the client's result (the last line of stdout, read by ``run_in_ns``)."""
    print(json.dumps(result), flush=True)
