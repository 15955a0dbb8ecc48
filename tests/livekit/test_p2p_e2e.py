"""Embedded mode, peer to peer: a browser-like aiortc caller talks to the agent inside the API
process, with no media server; and the runtime's guards (a peer that never connects, shutdown,
a crash before the call runs), each of which must leave the call row failed with its reason.

Everything WebRTC runs inside the test's network namespace (ICE would otherwise pick the
machine's own interfaces): ``parley serve`` and the caller as processes inside it, the runtime
tests on a thread that joined it (their database is a Unix socket, reachable from anywhere).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest
from aiortc import RTCPeerConnection
from aiortc.mediastreams import AudioStreamTrack

from agents.calls import CallContext, CallStore
from agents.webrtc import AgentUnavailable, P2PCalls, PeerConflict
from parley.db import create_pool
from parley.db.testing import db_url, migrated_template, pg_server
from parley.errors import ProviderUnavailable
from parley.settings import Settings
from pipelines.registry import Services
from tests.livekit.parley_stack import (
    QUESTION,
    api_url,
    call_rows,
    check_hung_up,
    clinic_agent,
    parley_env,
    query,
    seed,
    start_api,
    start_fake_llm,
    wait_call_ended,
)
from tests.livekit.stack import NsProcess
from tests.netns import Namespace

__all__ = ["db_url", "migrated_template", "pg_server"]
T = TypeVar("T")

API_PORT = 8001
API = api_url(API_PORT)
LLM_PORT = 8091
# For the runtime tests: real services that are never used (nobody speaks), cheap to build.
QUIET_AGENT = {
    "name": "Quiet",
    "system_prompt": "Answer briefly.",
    "stt": {"provider": "groq"},
    "llm": {"provider": "openai", "base_url": "http://127.0.0.1:9/v1", "model": "m"},
    "tts": {"provider": "local"},
}


def _in_ns(netns: Namespace, fn: Callable[[], Awaitable[T]]) -> T:
    """Run a coroutine on an event loop of a thread inside the namespace (its sockets too)."""

    def _run() -> T:
        async def _main() -> T:
            return await fn()

        return asyncio.run(_main())

    return netns.call(_run)


def _inside_namespace(addresses: list[str]) -> bool:
    return all(a.startswith("10.213.0.") or a.startswith("127.") for a in addresses)


def test_browser_peer_hears_the_answer_and_the_call_is_recorded(
    netns: Namespace,
    ns_process: Callable[..., NsProcess],
    ns_client: Callable[..., Any],
    db_url: str,
    tmp_path: Path,
    speak: Callable[[str], Path],
    transcribe: Callable[[Path], str],
) -> None:
    seeded = asyncio.run(seed(db_url, clinic_agent(LLM_PORT)))
    start_fake_llm(ns_process, LLM_PORT)
    api = start_api(ns_process, parley_env(db_url, tmp_path), API_PORT)
    out = ns_client(
        "tests.livekit.clients.p2p_caller",
        ["--api", API, "--agent-id", str(seeded.agent_id), "--wav", str(speak(QUESTION)),
         "--out", str(tmp_path / "heard.wav"), "--expect-greeting", "--hang-up"],
        env={"PARLEY_TEST_API_KEY": seeded.key},
        timeout=180,
    )  # fmt: skip
    session = out["session"]
    assert session["mode"] == "p2p", session
    assert session["offer_url"] == f"/v1/sessions/web/{session['call_id']}/offer"
    # Only addresses of the namespace were offered, answered and used.
    cands = out["candidates"]
    assert cands["offer"] and cands["answer"], cands
    assert _inside_namespace(cands["offer"] + cands["answer"]), cands
    assert out["selected"] and _inside_namespace(
        [a for pair in out["selected"] for a in pair.split(" -> ")]
    ), out["selected"]
    assert out["greeting_ms"] is not None and out["reply_heard"], out
    heard = transcribe(tmp_path / "heard.wav")
    assert "eighty" in heard or "80" in heard, heard

    # RTVI over the data channel: bot ready, captions of both sides, the latency message.
    types = [m.get("type") for m in out["rtvi"]]
    assert "bot-ready" in types, types
    said = " ".join(
        str(m["data"].get("text", "")) for m in out["rtvi"] if m.get("type") == "user-transcription"
    )
    assert "check" in said.lower(), types
    bot = " ".join(
        str(m["data"].get("text", ""))
        for m in out["rtvi"]
        if m.get("type") in ("bot-output", "bot-tts-text", "bot-transcription")
    )
    assert "eighty" in bot.lower(), types
    latency = [
        m["data"] for m in out["rtvi"]
        if m.get("type") == "server-message" and m.get("data", {}).get("type") == "latency"
    ]  # fmt: skip
    assert latency and latency[0]["voice_to_voice_ms"] is not None, types

    roles = check_hung_up(wait_call_ended(db_url, session["call_id"]), seeded)
    assert any(r == "user" and "check" in t.lower() for r, t in roles), roles
    assert any(r == "assistant" and "eighty" in t.lower() for r, t in roles), roles
    # A finished call takes no new offer.
    status, body = netns.http(
        "POST",
        f"{API}{session['offer_url']}",
        json_body={"sdp": "v=0\r\n", "type": "offer"},
        headers={"Authorization": f"Bearer {seeded.key}"},
    )
    assert status == 409 and body["error"]["code"] == "conflict", body
    assert "Traceback" not in api.log()


# -- the runtime's guards, in process ---------------------------------------------------------


async def _offer(pc: RTCPeerConnection, *, candidates: bool) -> str:
    pc.addTrack(AudioStreamTrack())
    pc.createDataChannel("rtvi")
    await pc.setLocalDescription(await pc.createOffer())
    sdp = pc.localDescription.sdp
    if not candidates:  # a peer whose candidates we cannot use: ICE never starts
        sdp = "".join(line for line in sdp.splitlines(True) if "candidate" not in line)
    return sdp


def _settings(tmp_path: Path) -> Settings:
    return Settings(  # type: ignore[call-arg]
        data_dir=tmp_path / "data",
        groq_api_key="test-key",
        groq_base_url="http://127.0.0.1:9/openai/v1",
        openai_api_key="test-key",
    )


async def _new_call(db_url: str) -> tuple[uuid.UUID, uuid.UUID]:
    seeded = await seed(db_url, QUIET_AGENT)
    sql = (
        "insert into public.calls (org_id, agent_id, direction, room_name)"
        " values ($1, $2, 'web', 'web-p2p') returning id"
    )
    rows = await query(db_url, sql, seeded.org_id, seeded.agent_id)
    return rows[0]["id"], seeded.org_id


def test_peer_that_never_connects_fails_the_call(
    netns: Namespace, db_url: str, tmp_path: Path
) -> None:
    async def scenario() -> dict[str, Any]:
        call_id, org = await _new_call(db_url)
        pool = await create_pool(db_url)
        calls = P2PCalls(
            CallStore(pool), _settings(tmp_path), connect_timeout_secs=2, hard_stop_grace_secs=3
        )
        client = RTCPeerConnection()
        try:
            answer = await calls.answer(
                call_id, org, await _offer(client, candidates=False), "offer"
            )
            assert answer["type"] == "answer" and answer["pc_id"]
            # One peer per call: a second offer is refused, renegotiation needs the pc_id.
            with pytest.raises(PeerConflict):
                await calls.answer(
                    call_id, org, await _offer(RTCPeerConnection(), candidates=True), "offer"
                )
            task = calls.task(call_id)
            assert task is not None
            started = time.monotonic()
            reason = await asyncio.wait_for(task, 60)  # includes loading Piper
            took = time.monotonic() - started
            assert not calls.has(call_id)
            return {"reason": reason, "took": took, "call": await call_rows(db_url, call_id)}
        finally:
            await client.close()
            await calls.close()
            await pool.close()

    out = _in_ns(netns, scenario)
    assert out["reason"] == "connect_failed", out
    call = out["call"]
    assert (call["status"], call["end_reason"]) == ("failed", "connect_failed"), call
    assert call["answered_at"] is None and call["ended_at"] is not None


def test_shutdown_cancels_calls_and_failures_fail_the_call(
    netns: Namespace, db_url: str, tmp_path: Path
) -> None:
    def no_providers(_call: CallContext) -> Any:
        raise ProviderUnavailable("no such voice")

    def broken(_call: CallContext) -> Any:
        # Services that cannot make a pipeline: the call crashes once it runs.
        return Services(stt=None, llm=None, tts=None, providers={})  # type: ignore[arg-type]

    async def scenario() -> dict[str, Any]:
        waiting, org = await _new_call(db_url)
        unavailable, org2 = await _new_call(db_url)
        crashing, org3 = await _new_call(db_url)
        pool = await create_pool(db_url)
        store = CallStore(pool)
        calls = P2PCalls(store, _settings(tmp_path), connect_timeout_secs=60)
        clients = [RTCPeerConnection() for _ in range(3)]
        try:
            with pytest.raises(AgentUnavailable, match="no such voice"):
                await P2PCalls(store, _settings(tmp_path), services=no_providers).answer(
                    unavailable, org2, await _offer(clients[0], candidates=False), "offer"
                )
            crashy = P2PCalls(store, _settings(tmp_path), services=broken)
            await crashy.answer(crashing, org3, await _offer(clients[1], candidates=False), "offer")
            crash_task = crashy.task(crashing)
            assert crash_task is not None
            crash_reason = await asyncio.wait_for(crash_task, 10)

            await calls.answer(waiting, org, await _offer(clients[2], candidates=False), "offer")
            await asyncio.sleep(0.5)  # the waiting call's pipeline is up
            started = time.monotonic()
            await calls.close()
            took = time.monotonic() - started
            with pytest.raises(PeerConflict, match="shutting down"):
                await calls.answer(waiting, org, "v=0\r\nm=audio 9 RTP/AVP 0\r\n", "offer")
            return {
                "crash_reason": crash_reason,
                "took": took,
                "left": len(calls) + len(crashy),
                "waiting": await call_rows(db_url, waiting),
                "unavailable": await call_rows(db_url, unavailable),
                "crashed": await call_rows(db_url, crashing),
            }
        finally:
            for c in clients:
                await c.close()
            await pool.close()

    out = _in_ns(netns, scenario)
    assert out["took"] < 10 and out["left"] == 0, out
    waiting, unavailable, crashed = out["waiting"], out["unavailable"], out["crashed"]
    # Pipecat's runner turns the cancellation into CancelFrame("runner exiting").
    assert waiting["status"] == "failed", waiting
    assert waiting["end_reason"] in ("cancelled", "runner exiting"), waiting
    assert (unavailable["status"], unavailable["end_reason"]) == ("failed", "error"), unavailable
    assert out["crash_reason"] == "error"
    assert (crashed["status"], crashed["end_reason"]) == ("failed", "error"), crashed
