"""Embedded mode: a browser talks peer-to-peer to this process, no media server in between.

The page POSTs its SDP offer (non-trickle: it waits for its ICE candidates first); we load the
agent's models (off the event loop, once per process), answer with Pipecat's
``SmallWebRTCConnection`` (aiortc) and run the call on a ``SmallWebRTCTransport`` in a
background task that :class:`P2PCalls` keeps, so that shutdown cancels every call cleanly and
nothing outlives the process unnoticed. The call row's lifecycle is ``run_call``'s; what fails
before it runs (providers, shutdown) is recorded here.

No STUN/TURN servers: the browser and the API reach each other directly (same machine or
network), and the server must never contact outside hosts on its own. A peer that never gets
as far as ICE (e.g. it offered only loopback candidates, which aioice ignores) leaves aiortc in
"new" forever, where Pipecat's own connecting-state timeout never starts: such a peer is given
up on after ``connect_timeout_secs`` (``run_call``'s watchdog, with a hard cancel behind it).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from uuid import UUID

from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.sdp import SessionDescription
from loguru import logger
from pipecat.transports.base_transport import TransportParams
from pipecat.transports.smallwebrtc.connection import SmallWebRTCConnection
from pipecat.transports.smallwebrtc.transport import SmallWebRTCTransport

from agents.calls import CallContext, CallStore
from agents.runner import run_call
from parley.config import AgentConfig
from parley.errors import ParleyError
from parley.settings import Settings
from pipelines.graph import AUDIO_IN_RATE
from pipelines.registry import Services, build_services, prewarm

# From the answer to a connected peer. Browsers on the same network connect in well under a
# second; the margin covers a slow page still opening its microphone.
CONNECT_TIMEOUT_SECS = 20.0
# After run_call's own connect watchdog should have ended the call: cancel it outright.
HARD_STOP_GRACE_SECS = 10.0
# Answering parses the offer and gathers our host candidates: local work only.
ANSWER_TIMEOUT_SECS = 10.0
MAX_SDP_CHARS = 100_000
CLOSE_TIMEOUT_SECS = 5.0

ServicesFactory = Callable[[CallContext], Services]


class BadOffer(ParleyError):
    """The SDP offer cannot be answered (not SDP, no audio, rejected by aiortc)."""


class AgentUnavailable(ParleyError):
    """The agent's providers cannot start (missing model, bad key...): the call has failed."""


class PeerConflict(ParleyError):
    """The call cannot take this offer: it already has a peer, is not waiting for one, or the
    server is shutting down."""


@dataclass(eq=False)
class _Peer:
    call_id: UUID
    connection: SmallWebRTCConnection
    task: asyncio.Task[str] | None = None
    connected: asyncio.Event = field(default_factory=asyncio.Event)


def check_offer(sdp: str, type_: str) -> None:
    """Refuse what aiortc would accept but cannot serve: anything but an offer with audio."""
    if type_ != "offer":
        raise BadOffer(f"expected an SDP offer, got type {type_!r}")
    if len(sdp) > MAX_SDP_CHARS:
        raise BadOffer(f"the SDP is longer than {MAX_SDP_CHARS} characters")
    try:
        parsed = SessionDescription.parse(sdp)
    except Exception as err:  # aiortc's parser raises AssertionError/ValueError/KeyError
        raise BadOffer("the offer is not valid SDP") from err
    if not any(m.kind == "audio" for m in parsed.media):
        raise BadOffer("the offer has no audio: add a microphone track (or a recvonly audio)")


class P2PCalls:
    """The process's peer-to-peer calls, by call id (at most one peer per call)."""

    def __init__(
        self,
        store: CallStore,
        settings: Settings,
        *,
        services: ServicesFactory | None = None,
        audio_out_rate: int = 24000,
        connect_timeout_secs: float = CONNECT_TIMEOUT_SECS,
        hard_stop_grace_secs: float = HARD_STOP_GRACE_SECS,
    ) -> None:
        self._store = store
        self._settings = settings
        self._services = services
        self._audio_out_rate = audio_out_rate
        self._connect_timeout = connect_timeout_secs
        self._hard_stop_grace = hard_stop_grace_secs
        self._peers: dict[UUID, _Peer] = {}
        self._starting: set[UUID] = set()
        self._closing = False

    def __len__(self) -> int:
        return len(self._peers)

    def has(self, call_id: UUID) -> bool:
        return call_id in self._peers

    def task(self, call_id: UUID) -> asyncio.Task[str] | None:
        """The call's background task (tests await it to see how the call ended)."""
        peer = self._peers.get(call_id)
        return peer.task if peer else None

    async def answer(
        self, call_id: UUID, org_id: UUID, sdp: str, type_: str, pc_id: str | None = None
    ) -> dict[str, str]:
        """The SDP answer ``{sdp, type, pc_id}``; the call starts in the background. An offer
        naming the live peer's ``pc_id`` renegotiates it instead. Raises :class:`BadOffer`,
        :class:`PeerConflict`, :class:`AgentUnavailable` (the call is then failed), or
        ``CallNotFound`` from the store.

        The agent's models are loaded before answering (off the event loop; once per process):
        a peer that connected long before the pipeline started could otherwise be missed."""
        check_offer(sdp, type_)
        peer = self._peers.get(call_id)
        if peer is not None:
            if pc_id is None or pc_id != peer.connection.pc_id:
                raise PeerConflict("this call already has a peer connection")
            return await self._renegotiate(peer, sdp, type_)
        if self._closing:
            raise PeerConflict("the server is shutting down")
        if call_id in self._starting:
            raise PeerConflict("an offer for this call is already being answered")
        # Reserved before the first await: two concurrent offers cannot both start the call.
        self._starting.add(call_id)
        try:
            call = await self._store.load(call_id, org_id)
            if call.status != "created":
                raise PeerConflict(f"the call is {call.status}, not waiting for a peer")
            await _dry_run(sdp, type_)  # a bad offer must not wait for models to load
            services = await self._prepare(call)
            if self._closing:
                await self._finish(call, "cancelled")
                raise PeerConflict("the server is shutting down")
            connection = SmallWebRTCConnection(
                ice_servers=[], connection_timeout_secs=round(self._connect_timeout)
            )
            await self._initialize(connection, sdp, type_)
            answer = connection.get_answer()
            if answer is None:  # aiortc sets it in initialize; defensive
                await _close(connection)
                raise BadOffer("no SDP answer could be made for this offer")
            peer = _Peer(call_id, connection)
            _watch_state(peer)
            self._peers[call_id] = peer
            peer.task = asyncio.create_task(
                self._serve(call, peer, services), name=f"p2p-call-{call_id}"
            )
            logger.info(f"p2p call {call_id}: answered (peer {connection.pc_id})")
            return dict(answer)
        finally:
            self._starting.discard(call_id)

    async def close(self, timeout_secs: float = 10.0) -> None:
        """Shutdown: refuse new offers, cancel every call (each records how it ended)."""
        self._closing = True
        tasks = [p.task for p in self._peers.values() if p.task is not None]
        for t in tasks:
            t.cancel()
        if tasks:
            _done, pending = await asyncio.wait(tasks, timeout=timeout_secs)
            if pending:
                logger.warning(f"{len(pending)} p2p call(s) did not stop within {timeout_secs} s")
        for peer in list(self._peers.values()):
            await _close(peer.connection)
        self._peers.clear()

    async def _initialize(self, connection: SmallWebRTCConnection, sdp: str, type_: str) -> None:
        try:
            async with asyncio.timeout(ANSWER_TIMEOUT_SECS):
                await connection.initialize(sdp=sdp, type=type_)
        except TimeoutError as err:
            await _close(connection)
            raise BadOffer(f"no answer could be made within {ANSWER_TIMEOUT_SECS} s") from err
        except Exception as err:  # aiortc rejects bad SDP with assorted exception types
            await _close(connection)
            logger.info(f"p2p offer rejected: {type(err).__name__}: {err}")
            raise BadOffer(f"the offer was rejected: {err or type(err).__name__}") from err

    async def _renegotiate(self, peer: _Peer, sdp: str, type_: str) -> dict[str, str]:
        try:
            async with asyncio.timeout(ANSWER_TIMEOUT_SECS):
                await peer.connection.renegotiate(sdp=sdp, type=type_)
        except Exception as err:
            raise BadOffer(f"the renegotiation offer was rejected: {type(err).__name__}") from err
        answer = peer.connection.get_answer()
        if answer is None:
            raise BadOffer("no SDP answer could be made for this offer")
        return dict(answer)

    async def _prepare(self, call: CallContext) -> Services:
        try:
            if self._services is not None:
                return self._services(call)
            # Loading models blocks: off the event loop, which serves the whole API.
            return await asyncio.to_thread(_warm_services, call.agent, self._settings)
        except Exception as err:
            logger.warning(f"p2p call {call.call_id}: the agent cannot start: {err}")
            await self._finish(call, "error")
            raise AgentUnavailable(f"the agent's providers could not start: {err}") from err

    async def _serve(self, call: CallContext, peer: _Peer, services: Services) -> str:
        # run_call records how the call ended; until it runs, this does.
        running = False
        try:
            with logger.contextualize(call_id=str(call.call_id)):
                transport = SmallWebRTCTransport(
                    webrtc_connection=peer.connection,
                    params=TransportParams(
                        audio_in_enabled=True,
                        audio_in_sample_rate=AUDIO_IN_RATE,
                        audio_out_enabled=True,
                        audio_out_sample_rate=self._audio_out_rate,
                    ),
                )
                hard_stop = asyncio.create_task(self._hard_stop_if_never_connected(peer))
                running = True
                try:
                    return await run_call(
                        self._store,
                        call,
                        transport,
                        self._settings,
                        services=services,
                        audio_out_rate=self._audio_out_rate,
                        rtvi=True,
                        connect_timeout_secs=self._connect_timeout,
                    )
                finally:
                    hard_stop.cancel()
        except asyncio.CancelledError:
            if not running:
                await asyncio.shield(self._finish(call, "cancelled"))
            raise
        except Exception:
            logger.exception(f"p2p call {call.call_id} could not start")
            await self._finish(call, "error")
            return "error"
        finally:
            await _close(peer.connection)
            if self._peers.get(call.call_id) is peer:
                del self._peers[call.call_id]

    async def _finish(self, call: CallContext, reason: str) -> None:
        try:
            await self._store.finish(call, reason)
        except Exception as err:  # the database is gone: nothing more to do here
            logger.error(f"p2p call {call.call_id}: could not record its end: {err}")

    async def _hard_stop_if_never_connected(self, peer: _Peer) -> None:
        try:
            await asyncio.wait_for(
                peer.connected.wait(), self._connect_timeout + self._hard_stop_grace
            )
        except TimeoutError:
            logger.warning(f"p2p call {peer.call_id}: the peer never connected; cancelling")
            if peer.task is not None:
                peer.task.cancel()


async def _dry_run(sdp: str, type_: str) -> None:
    """Let aiortc read the offer without answering it: no ICE gathering, so no sockets."""
    pc = RTCPeerConnection()
    try:
        await pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type=type_))
    except Exception as err:  # aiortc rejects bad SDP with assorted exception types
        raise BadOffer(f"the offer was rejected: {err or type(err).__name__}") from err
    finally:
        await pc.close()


def _warm_services(agent: AgentConfig, settings: Settings) -> Services:
    """Load the agent's models (cached per process), then its services (first time: imports)."""
    prewarm(agent, settings)
    return build_services(agent, settings)


def _watch_state(peer: _Peer) -> None:
    @peer.connection.pc.on("connectionstatechange")
    def _changed() -> None:
        if peer.connection.pc.connectionState == "connected":
            peer.connected.set()


async def _close(connection: SmallWebRTCConnection) -> None:
    """Close the peer connection; it may already be closed, or half set up.

    Never waits long: when Pipecat's connecting timeout closes a connection, the close cancels
    its own task midway (the state change cancels the timeout task that is closing), and
    aiortc's ``close()`` then waits forever for the first close to finish."""
    if connection.pc.connectionState == "closed":
        return
    try:
        async with asyncio.timeout(CLOSE_TIMEOUT_SECS):
            await connection.disconnect()
    except Exception as err:
        logger.debug(f"closing a peer connection: {type(err).__name__}: {err}")
