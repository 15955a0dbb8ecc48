"""Liveness (the process answers) and readiness (the database answers)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from loguru import logger

from api.deps import state
from api.errors import ApiError

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="Liveness")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", summary="Readiness: the database answers and is migrated")
async def readyz(request: Request) -> dict[str, Any]:
    try:
        async with state(request).pool.acquire() as conn:
            version = await conn.fetchval(
                "select max(version) from supabase_migrations.schema_migrations"
            )
    except Exception as err:  # any failure here means "not ready"
        # The detail (hosts, users, driver messages) is for the operator's logs, not callers.
        logger.warning(f"readyz: database unavailable: {type(err).__name__}: {err}")
        raise ApiError(503, "not_ready", "database unavailable") from err
    return {"status": "ready", "schema_version": version}
