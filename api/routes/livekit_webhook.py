"""LiveKit webhooks: the room's view of a call, for when no worker reports it (the worker
crashed, never got the job, or the caller never came).

Authenticated by LiveKit's signature (a JWT signed with our API secret over the body's hash),
not by a Bearer credential. Webhooks carry no organization: calls are found by ``room_name`` on
the service path. Each event id is applied once across API replicas (LiveKit retries
deliveries). Every update is conditional on the call's status, so the worker, which updates
the same rows, and repeated or reordered events can never make an illegal transition.
Logs name event types and call ids only: room names and identities of phone calls may contain
phone numbers.
"""

from __future__ import annotations

import hashlib
import random
from typing import Any

import asyncpg
from fastapi import APIRouter, Request
from livekit.protocol.models import ParticipantInfo
from livekit.protocol.webhook import WebhookEvent
from loguru import logger

from api import livekit
from api.deps import state
from api.errors import ApiError
from api.schemas_common import error_responses
from api.schemas_sessions import WebhookAck

router = APIRouter(prefix="/v1/livekit", tags=["livekit"])

# Event ids older than this are forgotten (LiveKit stops retrying within minutes).
_KEEP_EVENTS = "7 days"
_PRUNE_EVERY = 200  # on average, one request in this many prunes


@router.post(
    "/webhook",
    response_model=WebhookAck,
    responses=error_responses(400, 401, 404, 413),
    # The body is read raw (its hash is signed), so it is documented here, not by a model.
    openapi_extra={
        "requestBody": {
            "required": True,
            "description": "A LiveKit WebhookEvent, as JSON (livekit-server sends it as is).",
            "content": {"application/webhook+json": {"schema": {"type": "object"}}},
        }
    },
)
async def livekit_webhook(request: Request) -> WebhookAck:
    """Point LiveKit's ``webhook.urls`` here (same API key as ``LIVEKIT_API_KEY``).

    ``participant_joined`` (not the agent) moves a created/ringing call to in_progress;
    ``room_finished`` ends what is still open: in_progress → completed (``room_finished``),
    created/ringing → failed (``no_participant``). Other events are acknowledged and ignored.
    401 for a missing or bad signature; 404 when this server has no LiveKit configured."""
    st = state(request)
    creds = livekit.credentials(st.core)
    if creds is None:
        raise ApiError(404, "not_found", "LiveKit is not configured on this server")
    body = await request.body()
    try:
        event = livekit.receive_webhook(creds, body, request.headers.get("authorization"))
    except livekit.WebhookInvalid as err:
        code = "unauthorized" if err.status == 401 else "bad_request"
        raise ApiError(err.status, code, str(err)) from err
    # LiveKit always sets an id; a hash keeps dedup working for any sender that does not.
    event_id = event.id or "sha256:" + hashlib.sha256(body).hexdigest()
    async with st.pool.acquire() as conn, conn.transaction():
        fresh = await conn.fetchval(
            "insert into private.livekit_webhook_events (id, event, room_name)"
            " values ($1, $2, $3) on conflict (id) do nothing returning true",
            event_id[:200],
            event.event,
            event.room.name or None,
        )
        if not fresh:
            logger.debug(f"livekit webhook {event.event}: duplicate delivery ignored")
            return WebhookAck(event=event.event, applied=False)
        ids = await apply_event(conn, event)
        if random.randrange(_PRUNE_EVERY) == 0:
            await conn.execute(
                "delete from private.livekit_webhook_events"
                f" where received_at < now() - interval '{_KEEP_EVENTS}'"
            )
    if ids:
        logger.info(f"livekit webhook {event.event}: updated call(s) {', '.join(ids)}")
    return WebhookAck(event=event.event, applied=bool(ids))


def is_agent(participant: ParticipantInfo) -> bool:
    # Our worker's token says kind "agent"; the identity prefix covers tokens that do not.
    return participant.kind == ParticipantInfo.Kind.AGENT or participant.identity.startswith(
        "agent"
    )


async def apply_event(conn: asyncpg.Connection, event: WebhookEvent) -> list[str]:
    """Apply one verified event; returns the ids of the calls it changed."""
    room = event.room.name
    if not room:
        return []
    rows: list[Any] = []
    if event.event == "participant_joined" and not is_agent(event.participant):
        rows = await conn.fetch(
            "update public.calls set status = 'in_progress',"
            " started_at = coalesce(started_at, now()), answered_at = coalesce(answered_at, now())"
            " where room_name = $1 and status in ('created', 'ringing') returning id",
            room,
        )
    elif event.event == "room_finished":
        rows = await conn.fetch(
            "update public.calls set"
            " status = case when status = 'in_progress' then 'completed' else 'failed' end,"
            " end_reason = case when status = 'in_progress' then 'room_finished'"
            "   else 'no_participant' end,"
            " ended_at = now()"
            " where room_name = $1 and status in ('created', 'ringing', 'in_progress')"
            " returning id",
            room,
        )
    # room_started and participant_left change nothing: the worker follows the caller, and
    # room_finished closes whatever the worker could not.
    return [str(r["id"]) for r in rows]
