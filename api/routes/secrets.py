"""Organization secrets: named values agent configs reference as ``${secrets.NAME}``.

Write-only: values are stored encrypted (parley/secrets.py) and never returned or logged;
listing shows names and dates. Organization owners/admins (JWT) or an API key manage them."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated
from uuid import UUID

import asyncpg
from fastapi import APIRouter, Path, Request, Response
from pydantic import BaseModel, Field

from api.deps import Caller, OrgAdmin, state
from api.errors import not_found
from api.schemas_common import COMMON_ERRORS, error_responses
from parley import secrets

router = APIRouter(prefix="/v1/secrets", tags=["secrets"], responses=COMMON_ERRORS)

SecretName = Annotated[
    str,
    Path(
        pattern=secrets.NAME.pattern,
        description="Upper-case letters, digits and _, starting with a letter (max 64).",
        examples=["CRM_TOKEN"],
    ),
]


class SecretIn(BaseModel):
    value: str = Field(min_length=1, max_length=secrets.MAX_VALUE_CHARS, repr=False)


class SecretOut(BaseModel):
    name: str
    created_at: datetime
    updated_at: datetime


class SecretList(BaseModel):
    items: list[SecretOut]


Manager = OrgAdmin  # owners/admins, or API keys with the admin scope


@router.put(
    "/{name}",
    response_model=SecretOut,
    dependencies=[Manager],
    responses=error_responses(403),
)
async def put_secret(name: SecretName, body: SecretIn, who: Caller, request: Request) -> SecretOut:
    """Create or replace a secret. The value is never shown again."""
    st = state(request)
    ring = secrets.key_ring(st.core)
    async with st.pool.acquire() as conn, conn.transaction():
        await secrets.put(conn, ring, who.org_id, name, body.value)
        row = await _row(conn, who.org_id, name)
    assert row is not None
    return SecretOut(**dict(row))


@router.get("", response_model=SecretList, dependencies=[Manager], responses=error_responses(403))
async def list_secrets(who: Caller, request: Request) -> SecretList:
    """Names and dates only: values are write-only."""
    async with state(request).pool.acquire() as conn:
        rows = await conn.fetch(
            "select name, created_at, updated_at from private.org_secrets where org_id = $1 "
            "order by name",
            who.org_id,
        )
    return SecretList(items=[SecretOut(**dict(r)) for r in rows])


@router.delete(
    "/{name}",
    status_code=204,
    response_class=Response,
    dependencies=[Manager],
    responses=error_responses(403, 404),
)
async def delete_secret(name: SecretName, who: Caller, request: Request) -> Response:
    """Delete a secret; configs that reference it then get "secret NAME is not set"."""
    async with state(request).pool.acquire() as conn:
        if not await secrets.delete(conn, who.org_id, name):
            raise not_found("secret")
    return Response(status_code=204)


async def _row(conn: asyncpg.Connection, org_id: UUID, name: str) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "select name, created_at, updated_at from private.org_secrets "
        "where org_id = $1 and name = $2",
        org_id,
        name,
    )
