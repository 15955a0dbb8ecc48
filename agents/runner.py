"""Run one call on a transport: the lifecycle every room runtime shares.

``run_call`` builds the agent's Pipecat session on a transport (LiveKit room, browser
peer-to-peer, SIP), follows the caller's connection in the call row, writes each turn as it
ends, and records how the call ended. Runtimes only make the transport.
"""

from __future__ import annotations

import asyncio
from typing import Any

from loguru import logger
from pipecat.transports.base_transport import BaseTransport

from agents.calls import CallContext, CallStore
from parley.settings import Settings
from pipelines.graph import VoiceSession, build_session
from pipelines.knowledge.retrieve import PgRetriever, Retriever
from pipelines.registry import Services, build_services

# The caller must connect within this long after the runtime is ready, or the call fails.
CONNECT_TIMEOUT_SECS = 60.0
# Fired by transports that learn that the caller can receive the agent's audio before they
# report ``on_client_connected``. LiveKit: the caller's subscription to the agent's track is live
# 10–150 ms before the room announces the caller, which it does at once only when the caller
# publishes a track (others wait for the server's 3 s participant-update batch). The greeting
# starts on the announcement, or on the subscription after a grace: a caller's client may attach
# its player well after its subscription is live (once its own connect() returns, 30-250 ms
# later under load) and audio sent before that is never played. A 60 ms grace still clipped the
# start of 1 greeting in 20 and gained nothing measurable, so the subscription is only the
# fallback for callers who publish nothing (who would otherwise wait 3 s).
CALLER_LISTENING = "on_caller_listening"
LISTENING_GRACE_SECS = 1.0


def knowledge_retriever(store: CallStore, call: CallContext) -> Retriever | None:
    """The agent's knowledge bases, scoped to the call's organization."""
    if call.agent.knowledge is None or not call.agent.knowledge.base_ids:
        return None
    return PgRetriever(store.pool, call.org_id, call.agent.knowledge.base_ids, shared_embedder())


_embedder: Any = None


def shared_embedder() -> Any:
    """One MiniLM per process (its ONNX session is thread-safe and ~90 MB)."""
    global _embedder
    if _embedder is None:
        from pipelines.knowledge.embed import LocalMiniLMEmbedder

        _embedder = LocalMiniLMEmbedder(threads=1)
    return _embedder


async def run_call(
    store: CallStore,
    call: CallContext,
    transport: BaseTransport,
    settings: Settings,
    *,
    services: Services | None = None,
    audio_out_rate: int = 24000,
    rtvi: bool = False,
    connect_timeout_secs: float = CONNECT_TIMEOUT_SECS,
) -> str:
    """Serve the call until it ends; return the end reason (also written to the call row)."""
    with logger.contextualize(call_id=str(call.call_id)):
        session: VoiceSession | None = None
        reason = "error"
        try:
            # Off the loop: building clients loads TLS contexts and models (~0.2 s of CPU), and
            # with `--threads` this loop carries every other call's audio.
            if services is None:
                services = await asyncio.to_thread(build_services, call.agent, settings)
            extra: dict[str, Any] = {"rtvi": True} if rtvi else {}
            session = build_session(
                call.agent,
                transport,
                services,
                sink=store.turn_sink(call),
                audio_out_rate=audio_out_rate,
                retriever=knowledge_retriever(store, call),
                settings=settings,
                **extra,
            )
            _follow_caller(store, call, transport, session, connect_timeout_secs)
            if call.direction == "web":
                # A phone line may be subscribed while it still rings: greet it on answer only.
                _greet_when_listening(transport, session)
            prepare = getattr(services.tts, "prepare", None)
            if call.agent.greeting and prepare is not None:
                # Ready before the caller arrives: the greeting then starts at once.
                session.add_timer(prepare(call.agent.greeting))
            logger.info(f"call started: agent {call.agent.name!r}, providers {session.providers}")
            await session.run(greet=False)
            reason = session.end_reason
        except asyncio.CancelledError:
            reason = "cancelled"
            raise
        except Exception:
            logger.exception("call failed")
            reason = "error"
        finally:
            status = await asyncio.shield(_finish(store, call, reason))
            logger.info(f"call ended: {reason} ({status or 'already ended'})")
        return reason


async def _finish(store: CallStore, call: CallContext, reason: str) -> str | None:
    try:
        return await store.finish(call, reason)
    except Exception as err:  # the DB is gone: the webhook's room_finished will close the row
        logger.error(f"could not record the end of the call: {err}")
        return None


def _follow_caller(
    store: CallStore,
    call: CallContext,
    transport: BaseTransport,
    session: VoiceSession,
    connect_timeout_secs: float,
) -> None:
    connected = asyncio.Event()

    async def _connected(_t: Any, client: Any) -> None:
        first = not connected.is_set()
        connected.set()
        if not first:
            return
        if call.direction != "outbound" and call.agent.greeting:
            # (An outbound callee "joins" when its phone starts ringing.)
            _report_greeting(transport, session, client)
        await session.greet()  # unless it already started (on_caller_listening)
        await store.mark_in_progress(call)

    async def _disconnected(_t: Any, _client: Any) -> None:
        # Nobody is left to hear the rest: cancel rather than drain queued speech.
        logger.info("caller left")
        await session.hang_up("user_left")

    async def _watch_connect() -> None:
        try:
            await asyncio.wait_for(connected.wait(), connect_timeout_secs)
        except TimeoutError:
            logger.warning("caller never connected")
            await session.hang_up("connect_failed")

    transport.add_event_handler("on_client_connected", _connected)
    transport.add_event_handler("on_client_disconnected", _disconnected)
    session.add_timer(_watch_connect())


def _report_greeting(transport: BaseTransport, session: VoiceSession, client: Any) -> None:
    """Log how long after the caller joined (the server's clock) the first audio went out."""
    joined_at = getattr(transport, "joined_at", None)
    # Pipecat's LiveKit transport passes {"id": identity} (as Daily does); others a string.
    participant = client.get("id") if isinstance(client, dict) else client
    joined = (
        joined_at(participant) if callable(joined_at) and isinstance(participant, str) else None
    )
    if joined is None:
        return

    def _log(first_audio_at: float) -> None:
        ms = round((first_audio_at - joined) * 1000)
        logger.info(f"greeting started {ms} ms after the caller joined")

    latency = session.latency
    if latency.first_audio_at is not None:  # greeted on on_caller_listening, before this
        _log(latency.first_audio_at)
    else:
        latency.on_first_audio = _log


def _greet_when_listening(transport: BaseTransport, session: VoiceSession) -> None:
    # Only transports that registered the event fire it (adding a handler to others warns).
    if CALLER_LISTENING not in transport._event_handlers:
        return

    async def _listening(_t: Any, *_args: Any) -> None:
        await asyncio.sleep(LISTENING_GRACE_SECS)
        await session.greet()

    transport.add_event_handler(CALLER_LISTENING, _listening)
