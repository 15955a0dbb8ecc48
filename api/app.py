"""The FastAPI application: ``create_app()``; ``parley serve`` runs it with uvicorn."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import APIRouter, FastAPI
from fastapi.middleware.cors import CORSMiddleware

from api import errors
from api.deps import AppState
from api.middleware import RequestGuard
from api.ratelimit import RateLimiter
from api.routes import (
    agents,
    calls,
    contacts,
    health,
    keys,
    knowledge,
    livekit_webhook,
    secrets,
    sessions,
    tutor,
)
from api.settings import ApiSettings
from parley import __version__
from parley.db import open_database
from parley.db.settings import DatabaseSettings
from parley.jobs import JobQueue, JobSettings
from parley.settings import Settings, get_settings


def create_app(
    settings: Settings | None = None,
    api_settings: ApiSettings | None = None,
    db_settings: DatabaseSettings | None = None,
) -> FastAPI:
    api_cfg = api_settings or ApiSettings()
    core = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with open_database(core, db_settings=db_settings) as pool:
            app.state.parley = AppState(
                pool=pool,
                settings=api_cfg,
                limiter=RateLimiter(
                    api_cfg.rate_per_sec,
                    api_cfg.rate_burst,
                    failed_auth_per_min=api_cfg.failed_auth_per_min,
                    storage_url=api_cfg.redis_url,
                ),
                core=core,
            )
            # The job queue's consumer: routers' lifespans register their jobs on it.
            jobs = JobQueue(pool, getattr(app.state, "job_settings", None) or JobSettings())
            app.state.jobs = jobs
            try:
                yield
            finally:
                await jobs.close()  # already closed by _consume; here if a lifespan failed

    @asynccontextmanager
    async def _consume(app: FastAPI) -> AsyncIterator[None]:
        # The innermost lifespan: starts consuming once every router registered its jobs, and
        # stops (handing unfinished jobs back) before their resources and the pool close.
        await app.state.jobs.start()
        try:
            yield
        finally:
            await app.state.jobs.close()

    app = FastAPI(
        title="Parley API",
        version=__version__,
        description="Manage voice agents, their knowledge, contacts and calls.",
        lifespan=lifespan,
    )
    errors.install(app)
    for router in (
        health.router,
        agents.router,
        contacts.router,
        calls.router,
        keys.router,
        secrets.router,
        knowledge.router,
        sessions.router,
        livekit_webhook.router,
        tutor.router,
    ):
        app.include_router(router)
    app.include_router(APIRouter(lifespan=_consume))  # last: see _consume
    if api_cfg.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=api_cfg.cors_origins,
            allow_methods=["*"],
            allow_headers=["*"],
        )
    app.add_middleware(
        RequestGuard, max_body=api_cfg.max_body_bytes, max_upload=api_cfg.max_upload_bytes
    )
    return app
