"""Browser voice sessions: a web call for an agent, joined through LiveKit when a server is
configured, or peer-to-peer with this process (embedded mode) otherwise."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from uuid import UUID, uuid4

import asyncpg
from fastapi import APIRouter, FastAPI, Request
from loguru import logger

from agents.calls import CallNotFound, CallRefused, CallStore
from agents.stored import parse_stored
from agents.webrtc import AgentUnavailable, BadOffer, P2PCalls, PeerConflict
from api import livekit
from api.deps import AppState, Caller, state, transaction
from api.errors import ApiError, not_found
from api.schemas_common import COMMON_ERRORS, error_responses
from api.schemas_sessions import (
    AnswerOut,
    LiveKitSessionOut,
    OfferIn,
    P2PSessionOut,
    WebSessionIn,
    WebSessionOut,
)
from parley.config import AgentConfig
from parley.settings import Settings


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """The embedded peer-to-peer calls of this process; shutdown cancels them (each call row
    records how it ended). ``app.state.p2p_options``, when set before start-up, is passed to
    :class:`P2PCalls` (tests: a services factory, shorter timeouts)."""
    st: AppState = app.state.parley
    options = getattr(app.state, "p2p_options", None) or {}
    calls = P2PCalls(CallStore(st.pool, st.core), st.core, **options)
    app.state.p2p = calls
    warm = None
    if st.settings.prewarm_models and not st.core.livekit_enabled:
        warm = asyncio.create_task(asyncio.to_thread(_prewarm_default, st.core))
    sweeper = asyncio.create_task(_sweep_forever(st.pool))
    try:
        yield
    finally:
        if warm is not None:
            warm.cancel()
        sweeper.cancel()
        await calls.close()


# A web call nobody joined: past the join token's lifetime (LiveKit) nobody can join it any more,
# and a peer-to-peer call whose page never sent its offer is just as dead. Without this such
# rows would stay "created" for ever (the worker and the webhook only see calls that started).
UNCLAIMED_AFTER = livekit.TOKEN_TTL + timedelta(minutes=5)
SWEEP_EVERY_SECS = 60.0


async def sweep_unclaimed_web_calls(pool: asyncpg.Pool, older_than: timedelta) -> int:
    """Fail web calls still ``created`` after ``older_than`` (end reason ``never_joined``).
    Idempotent and safe with several API instances: one conditional update."""
    status = await pool.execute(
        "update public.calls set status = 'failed', end_reason = 'never_joined', ended_at = now()"
        " where direction = 'web' and status = 'created' and created_at < now() - $1::interval",
        older_than,
    )
    swept = int(status.split()[-1])
    if swept:
        logger.info(f"{swept} web call(s) nobody joined marked failed")
    return swept


async def _sweep_forever(pool: asyncpg.Pool) -> None:
    while True:
        try:
            await sweep_unclaimed_web_calls(pool, UNCLAIMED_AFTER)
        except Exception as err:  # a janitor: it must outlive a database outage; next round
            logger.warning(f"sweeping unjoined web calls failed: {type(err).__name__}: {err}")
        await asyncio.sleep(SWEEP_EVERY_SECS)


def _prewarm_default(core: Settings) -> None:
    from pipelines.registry import prewarm

    started = time.perf_counter()
    providers = prewarm(AgentConfig(name="prewarm", system_prompt="prewarm"), core)
    logger.info(f"models ready in {time.perf_counter() - started:.1f} s ({providers})")


router = APIRouter(
    prefix="/v1/sessions", tags=["sessions"], responses=COMMON_ERRORS, lifespan=lifespan
)


def _p2p(request: Request) -> P2PCalls:
    calls: P2PCalls = request.app.state.p2p
    return calls


@router.post(
    "/web",
    status_code=201,
    response_model=WebSessionOut,
    responses=error_responses(404, 503),
)
async def create_web_session(
    body: WebSessionIn, who: Caller, request: Request
) -> LiveKitSessionOut | P2PSessionOut:
    """Start a browser call with an agent (a ``web`` call, status ``created``).

    With LiveKit: a room-scoped participant token (join that room, publish the microphone and
    data, subscribe) and the agent dispatched to the room. 503 ``livekit_unavailable`` when the
    LiveKit server cannot be reached (the call is then ``failed``, ``dispatch_failed``).
    Embedded mode: POST the page's SDP offer to ``offer_url``."""
    st = state(request)
    if not who.may_use_agent(body.agent_id):
        raise ApiError(403, "forbidden", "this key may not start sessions with that agent")
    creds = livekit.credentials(st.core)
    call_id = uuid4()
    room = f"web-{call_id.hex}"
    async with transaction(st.pool, who) as db:  # committed before dispatch
        config = await db.fetchval(
            "select config::text from public.agents where id = $1 and org_id = $2",
            body.agent_id,
            who.org_id,
        )
        if config is None:
            raise not_found("agent")
        parse_stored(config, st.core, body.agent_id)  # refused: 422 before any call exists
        await db.execute(
            "insert into public.calls (id, org_id, agent_id, direction, status, room_name)"
            " values ($1, $2, $3, 'web', 'created', $4)",
            call_id,
            who.org_id,
            body.agent_id,
            room,
        )
    if creds is None:
        return P2PSessionOut(call_id=call_id, offer_url=f"/v1/sessions/web/{call_id}/offer")
    meta = {"call_id": str(call_id), "org_id": str(who.org_id)}
    try:
        await livekit.dispatch_agent(creds, room, st.core.livekit_agent_name, meta)
    except livekit.LiveKitUnavailable as err:
        logger.warning(f"web call {call_id}: agent dispatch failed: {err}")
        await _fail(st.pool, call_id, who.org_id, "dispatch_failed")
        raise ApiError(
            503,
            "livekit_unavailable",
            "the LiveKit server could not be reached to start the agent; retry shortly",
        ) from err
    try:
        waited = await livekit.wait_for_agent(creds, room, st.settings.agent_join_timeout_secs)
    except (livekit.AgentNotReady, livekit.LiveKitUnavailable) as err:
        logger.warning(f"web call {call_id}: {err}")
        await _fail(st.pool, call_id, who.org_id, "no_agent")
        with contextlib.suppress(livekit.LiveKitUnavailable):
            await livekit.delete_room(creds, room)
        raise ApiError(
            503,
            "agent_unavailable",
            "no agent worker took the call (all busy or none running); retry shortly",
        ) from err
    logger.info(f"web call {call_id}: agent in the room after {waited * 1000:.0f} ms")
    token = livekit.participant_token(
        creds, room, name=f"Web caller {secrets.token_hex(2)}", metadata={"call_id": str(call_id)}
    )
    return LiveKitSessionOut(
        call_id=call_id,
        room=room,
        url=creds.public_url,
        token=token.token,
        expires_at=token.expires_at,
    )


async def _fail(pool: asyncpg.Pool, call_id: UUID, org_id: UUID, reason: str) -> None:
    await pool.execute(
        "update public.calls set status = 'failed', end_reason = $3, ended_at = now()"
        " where id = $1 and org_id = $2 and status in ('created', 'ringing')",
        call_id,
        org_id,
        reason,
    )


@router.post(
    "/web/{call_id}/offer",
    response_model=AnswerOut,
    responses=error_responses(400, 404, 409, 503),
)
async def web_offer(call_id: UUID, body: OfferIn, who: Caller, request: Request) -> AnswerOut:
    """Embedded mode: answer the page's SDP offer and start the agent on this connection.

    Send a complete offer (wait for ICE gathering; there is no trickle). 409 ``conflict`` in
    LiveKit mode, when the call is not waiting for a peer (status other than ``created``), or
    when it already has one; 400 ``invalid_offer`` for an offer that cannot be answered; 503
    ``agent_unavailable`` when the agent's providers cannot start (the call is then failed).
    The first call of an agent in this process waits for its models to load.
    Renegotiation: send the answer's ``pc_id`` with the new offer."""
    st = state(request)
    if livekit.credentials(st.core) is not None:
        raise ApiError(
            409, "conflict", "this server uses LiveKit: join the room given by POST /web"
        )
    async with transaction(st.pool, who) as db:  # committed before dispatch
        row = await db.fetchrow(
            "select status, direction, agent_id from public.calls where id = $1 and org_id = $2",
            call_id,
            who.org_id,
        )
    if row is not None and not who.may_use_agent(row["agent_id"]):
        row = None  # another agent's call is not this key's to see
    if row is None or row["direction"] != "web":
        raise not_found("web call")
    p2p = _p2p(request)
    renegotiating = body.pc_id is not None and p2p.has(call_id)
    if row["status"] != "created" and not renegotiating:
        raise ApiError(
            409, "conflict", f"the call is {row['status']}; start a new session for a new call"
        )
    try:
        answer = await p2p.answer(call_id, who.org_id, body.sdp, body.type, body.pc_id)
    except BadOffer as err:
        raise ApiError(400, "invalid_offer", str(err)) from err
    except PeerConflict as err:
        raise ApiError(409, "conflict", str(err)) from err
    except CallRefused as err:  # the config changed since the session was created
        raise ApiError(422, "invalid_config", str(err)) from err
    except CallNotFound as err:  # deleted (or its agent) since the check above
        raise not_found("web call") from err
    except AgentUnavailable as err:  # the call is failed (end_reason "error")
        raise ApiError(503, "agent_unavailable", str(err)) from err
    return AnswerOut.model_validate(answer)
