"""The LiveKit worker: a livekit-agents ``AgentServer`` that runs Parley calls in rooms.

Jobs are dispatched explicitly by agent name (``settings.livekit_agent_name``) with metadata
``{"call_id", "org_id"}``. Each job runs in its own process (livekit-agents' process pool, whose
idle processes are prewarmed with the models), loads its call and agent from the database, and
runs the Pipecat pipeline through Pipecat's ``LiveKitTransport`` with a token of its own. The
job never calls ``ctx.connect()``: two connections with one identity would kick each other.
The worker reports ``active jobs / max_jobs`` as its load so LiveKit stops dispatching to it
when it is full.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from uuid import UUID

from livekit import api
from livekit.agents import AgentServer, JobContext, JobExecutorType, JobProcess
from loguru import logger

from agents.calls import CallNotFound, CallStore
from agents.livekit import call_loop, room_guard
from agents.livekit.call_loop import CallLoop
from agents.runner import run_call
from parley import log
from parley.db import create_pool
from parley.errors import ConfigError
from parley.settings import Settings, get_settings
from pipelines.graph import AUDIO_IN_RATE

AUDIO_OUT_RATE = 24000
TOKEN_TTL = timedelta(hours=6)  # longer than any call (max_duration_secs ≤ 4 h)


@dataclass(frozen=True, slots=True)
class JobRequestData:
    call_id: UUID
    org_id: UUID

    @classmethod
    def parse(cls, metadata: str) -> JobRequestData:
        try:
            doc = json.loads(metadata or "{}")
            return cls(call_id=UUID(str(doc["call_id"])), org_id=UUID(str(doc["org_id"])))
        except (ValueError, KeyError, TypeError) as err:
            raise ConfigError(
                'job metadata must be JSON {"call_id": "<uuid>", "org_id": "<uuid>"}'
            ) from err


def agent_token(settings: Settings, room: str, identity: str) -> str:
    """The pipeline's own room token (an agent participant, room-scoped)."""
    assert settings.livekit_api_key and settings.livekit_api_secret
    return (
        api.AccessToken(settings.livekit_api_key, settings.livekit_api_secret)
        .with_identity(identity)
        .with_name("Parley agent")
        .with_kind("agent")
        .with_ttl(TOKEN_TTL)
        .with_grants(
            api.VideoGrants(
                room_join=True,
                room=room,
                agent=True,
                can_publish=True,
                can_subscribe=True,
                can_publish_data=True,
            )
        )
        .to_jwt()
    )


class _NoConnectWarning(logging.Filter):
    """livekit-agents warns when a job never calls ``ctx.connect()``; ours never does on
    purpose (the Pipecat transport holds the room connection)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("The room connection was not established")


def prewarm_process(proc: JobProcess) -> None:
    """Runs in each idle job process before it gets a job: load every model a call needs, so
    the first words are not delayed by loading (Whisper, llama.cpp, Piper, Silero, Smart Turn)."""
    settings = get_settings()
    log.configure(settings.log_level, settings.log_json)
    logging.getLogger("livekit.agents").addFilter(_NoConnectWarning())
    room_guard.install()
    started = time.perf_counter()
    from pipecat.audio.vad.silero import SileroVADAnalyzer

    from agents.prewarm import agents_to_prewarm
    from pipelines.registry import prewarm

    # The providers the stored agents use, not the defaults: a worker whose agents all talk
    # through cloud providers loads no local model.
    setups = [prewarm(agent, settings) for agent in agents_to_prewarm(settings)]
    SileroVADAnalyzer()  # loads the ONNX session once; later instances reuse the file cache
    if any(name != "local" for setup in setups for name in setup.values()):
        _import_cloud_services()
    from agents.livekit import transport  # noqa: F401  (imported on the call's loop otherwise)

    proc.userdata["providers"] = setups
    logger.info(f"job process ready in {time.perf_counter() - started:.1f} s ({setups})")


def _import_cloud_services() -> None:
    """Any agent may pick a cloud provider: import them now, not on a call's event loop
    (importing the OpenAI client alone blocks ~1 s on a busy machine)."""
    import importlib

    for name in (
        "pipelines.services.openai.llm",
        "pipelines.services.openai.tts",
        # The OpenAI SDK imports its resources on first use: 0.3–2.9 s on a call's loop.
        "openai.resources.chat.completions.completions",
        "openai.resources.audio.transcriptions",
        "openai.resources.audio.speech",
        "anyio._backends._asyncio",
        "pipelines.services.groq.llm",
        "pipelines.services.groq.stt",
        "pipelines.services.deepgram.stt",
    ):
        # A missing extra only makes its provider unavailable.
        with contextlib.suppress(ImportError):
            importlib.import_module(name)


async def run_job(ctx: JobContext, calls: CallLoop | None = None) -> None:
    """One call: load it, join the room as the pipeline, serve until it ends. With ``calls``
    (``--threads``) the call runs on the process's shared call loop."""
    room = ctx.job.room.name
    try:
        req = JobRequestData.parse(ctx.job.metadata)
    except ConfigError as err:
        logger.error(f"job {ctx.job.id} in room {room} rejected: {err}")
        ctx.shutdown("bad_metadata")
        return
    reason = "error"
    try:
        serve = serve_call(req, room, f"parley-{ctx.job.id}", str(ctx.job.id))
        reason = await (calls.run(serve) if calls is not None else serve)
    finally:
        ctx.shutdown(reason)


async def run_job_on_call_loop(ctx: JobContext) -> None:
    """``--threads``: the job thread hands its call to the process's shared call loop."""
    await run_job(ctx, call_loop.shared())


async def serve_call(req: JobRequestData, room: str, identity: str, job_id: str) -> str:
    """The call in ``room`` as participant ``identity``; returns its end reason."""
    settings = get_settings()
    from parley.db import database_url

    pool = await create_pool(await database_url(settings), min_size=1, max_size=3)
    try:
        store = CallStore(pool, settings)
        try:
            call = await store.load(req.call_id, req.org_id)
        except CallNotFound as err:
            logger.error(f"job {job_id}: {err}")
            return "error"
        if call.status not in ("created", "ringing"):
            # Taken too late: the API already gave up on it (its room is being deleted).
            logger.warning(f"job {job_id}: call {call.call_id} is {call.status}; leaving")
            return "error"
        from pipecat.transports.livekit.transport import LiveKitParams

        from agents.livekit.transport import ParleyLiveKitTransport

        assert settings.livekit_url
        transport = ParleyLiveKitTransport(
            url=settings.livekit_url,
            token=agent_token(settings, room, identity),
            room_name=room,
            params=LiveKitParams(
                audio_in_enabled=True,
                audio_out_enabled=True,
                audio_in_sample_rate=AUDIO_IN_RATE,
                audio_out_sample_rate=AUDIO_OUT_RATE,
                audio_in_user_tracks=False,
            ),
        )
        return await run_call(
            store,
            call,
            transport,
            settings,
            audio_out_rate=AUDIO_OUT_RATE,
            rtvi=call.direction == "web",
        )
    finally:
        await pool.close()


class JobLoad:
    """Load = running jobs / cap: the server marks the worker full at the cap."""

    def __init__(self, max_jobs: int) -> None:
        self.max_jobs = max_jobs

    def __call__(self, server: AgentServer) -> float:
        return min(1.0, len(server.active_jobs) / self.max_jobs)


def build_server(
    settings: Settings,
    *,
    max_jobs: int = 8,
    idle_processes: int = 2,
    threads: bool = False,
    health_port: int = 0,
) -> AgentServer:
    """``threads``: calls share one process and one event loop (``agents/livekit/call_loop.py``)
    instead of a process each: far less CPU and memory per call, but one crash ends them all."""
    if not settings.livekit_enabled:
        raise ConfigError(
            "the worker needs LIVEKIT_URL, LIVEKIT_API_KEY and LIVEKIT_API_SECRET "
            "(fix: export them; `docker compose up` sets them for you)"
        )
    room_guard.install()  # thread jobs share this process: one panic would end every call
    server = AgentServer(
        ws_url=settings.livekit_url,
        api_key=settings.livekit_api_key,
        api_secret=settings.livekit_api_secret,
        job_executor_type=JobExecutorType.THREAD if threads else JobExecutorType.PROCESS,
        setup_fnc=prewarm_process,
        load_fnc=JobLoad(max_jobs),
        load_threshold=1.0,
        num_idle_processes=idle_processes,
        # Model loading on a 2-core machine can take longer than the default 10 s.
        initialize_process_timeout=120.0,
        # livekit-agents' health endpoint (GET /): 0 = a free port, so workers can share a host.
        port=health_port,
    )
    # Module-level entrypoints: the process pool pickles them.
    entrypoint = run_job_on_call_loop if threads else run_job
    server.rtc_session(entrypoint, agent_name=settings.livekit_agent_name)
    return server


def serve(settings: Settings, **options: Any) -> None:
    """Run until SIGINT/SIGTERM; running calls are drained first (livekit-agents' CLI loop)."""
    from livekit.agents.cli import cli, proto

    server = build_server(settings, **options)
    cli._run_worker(
        server,
        proto.CliArgs(log_level=settings.log_level, log_format="json", dev=False),
    )
