"""LiveKit from the API's side: participant tokens for browsers, explicit agent dispatch, and
webhook verification (``livekit-api``). Nothing here logs a token, a key or a secret."""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import aiohttp
from google.protobuf.json_format import ParseError
from livekit import api as lk
from livekit.protocol.agent_dispatch import CreateAgentDispatchRequest
from livekit.protocol.models import ParticipantInfo
from livekit.protocol.room import DeleteRoomRequest, ListParticipantsRequest
from livekit.protocol.webhook import WebhookEvent

from parley.settings import Settings

# Long enough to open the page and join; LiveKit refreshes a joined participant's token itself,
# so the session may outlast it. Short so a leaked token is soon worthless.
TOKEN_TTL = timedelta(minutes=10)
# The server is local or in the same region: a slow answer means it is down or overloaded.
DISPATCH_TIMEOUT_SECS = 5.0


class LiveKitUnavailable(Exception):
    """The LiveKit server could not be reached or refused the request."""


class WebhookInvalid(Exception):
    """A webhook delivery that is not from our LiveKit server (bad or missing signature) or
    cannot be parsed. ``status`` is 401 for the former, 400 for the latter."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Credentials:
    url: str  # what servers use
    public_url: str  # what browsers are told
    key: str
    secret: str


def credentials(settings: Settings) -> Credentials | None:
    """None when LiveKit is not configured (embedded peer-to-peer mode)."""
    if not settings.livekit_enabled:
        return None
    assert settings.livekit_url and settings.livekit_api_key and settings.livekit_api_secret
    return Credentials(
        url=settings.livekit_url,
        public_url=settings.livekit_public_url or settings.livekit_url,
        key=settings.livekit_api_key,
        secret=settings.livekit_api_secret,
    )


@dataclass(frozen=True)
class ParticipantToken:
    token: str
    identity: str
    expires_at: datetime


def participant_token(
    creds: Credentials,
    room: str,
    *,
    name: str,
    metadata: dict[str, str] | None = None,
    ttl: timedelta = TOKEN_TTL,
) -> ParticipantToken:
    """A browser's token: join this one room, publish its microphone and data, subscribe.
    No room creation or admin rights; the agent is dispatched by :func:`dispatch_agent`."""
    identity = f"web-{secrets.token_hex(4)}"
    grants = lk.VideoGrants(
        room_join=True,
        room=room,
        can_publish=True,
        can_publish_sources=["microphone"],
        can_subscribe=True,
        can_publish_data=True,
    )
    # JWT exp has one-second resolution: report what the token says, not a finer instant.
    expires_at = (datetime.now(UTC) + ttl).replace(microsecond=0)
    token = (
        lk.AccessToken(creds.key, creds.secret)
        .with_identity(identity)
        .with_name(name)
        .with_kind("standard")
        .with_metadata(json.dumps(metadata or {}))
        .with_grants(grants)
        .with_ttl(ttl)
        .to_jwt()
    )
    return ParticipantToken(token=token, identity=identity, expires_at=expires_at)


async def dispatch_agent(
    creds: Credentials,
    room: str,
    agent_name: str,
    metadata: dict[str, str],
    *,
    timeout_secs: float = DISPATCH_TIMEOUT_SECS,
) -> str:
    """Explicitly dispatch ``agent_name`` to ``room`` (this creates the room), so the agent is
    there whether or not the browser ever joins, and the job carries ``metadata``. A token's
    RoomConfiguration would only dispatch when that participant creates the room.
    Returns the dispatch id; raises :class:`LiveKitUnavailable`."""
    req = CreateAgentDispatchRequest(
        agent_name=agent_name, room=room, metadata=json.dumps(metadata)
    )
    async with _client(creds, timeout_secs) as client:
        dispatch = await client.agent_dispatch.create_dispatch(req)
    return str(dispatch.id)


class AgentNotReady(Exception):
    """No agent joined the room in time (every worker busy, or none running)."""


async def wait_for_agent(creds: Credentials, room: str, timeout_secs: float) -> float:
    """Wait until an agent participant has published its audio in ``room``; returns the
    seconds waited. The browser joins after this, so the agent is already listening (and the
    greeting is ready) when it arrives. Raises :class:`AgentNotReady` on timeout."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    async with _client(creds) as client:
        while loop.time() - started < timeout_secs:
            found = await client.room.list_participants(ListParticipantsRequest(room=room))
            if any(p.kind == ParticipantInfo.Kind.AGENT and p.tracks for p in found.participants):
                return loop.time() - started
            await asyncio.sleep(0.05)
    raise AgentNotReady(f"no agent joined within {timeout_secs:.0f} s")


async def delete_room(creds: Credentials, room: str) -> None:
    """Close ``room`` (a worker that takes its job late then leaves at once)."""
    async with _client(creds) as client:
        await client.room.delete_room(DeleteRoomRequest(room=room))


@asynccontextmanager
async def _client(
    creds: Credentials, timeout_secs: float = DISPATCH_TIMEOUT_SECS
) -> AsyncIterator[lk.LiveKitAPI]:
    """A server API client whose failures all become :class:`LiveKitUnavailable`."""
    try:
        async with lk.LiveKitAPI(
            creds.url,
            creds.key,
            creds.secret,
            timeout=aiohttp.ClientTimeout(total=timeout_secs),
            failover=False,
        ) as client:
            yield client
    except (aiohttp.ClientError, TimeoutError, OSError) as err:
        raise LiveKitUnavailable(f"LiveKit server unreachable ({type(err).__name__})") from err
    except lk.ServerError as err:
        raise LiveKitUnavailable(f"LiveKit refused a request ({err.code})") from err


def receive_webhook(creds: Credentials, body: bytes, authorization: str | None) -> WebhookEvent:
    """The verified event: the Authorization header is a JWT signed with our API secret whose
    ``sha256`` claim is the body's hash. Raises :class:`WebhookInvalid`."""
    if not authorization:
        raise WebhookInvalid(401, "missing Authorization header (a LiveKit webhook signature)")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as err:
        raise WebhookInvalid(400, "the body is not UTF-8 JSON") from err
    receiver = lk.WebhookReceiver(lk.TokenVerifier(creds.key, creds.secret))
    # LiveKit sends the bare JWT; accept "Bearer <jwt>" too (proxies and other SDKs add it).
    token = authorization.removeprefix("Bearer ").strip()
    try:
        return receiver.receive(text, token)
    except Exception as err:  # jwt errors, hash mismatch, protobuf parse errors
        if isinstance(err, ParseError | json.JSONDecodeError):
            raise WebhookInvalid(400, "the body is not a LiveKit webhook event") from err
        raise WebhookInvalid(401, "invalid webhook signature") from err
