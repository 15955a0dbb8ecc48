"""API keys of the caller's organization: create (the token is shown once), list, revoke.

Managing keys needs an API key with the ``admin`` scope or a signed-in owner or admin (the same
rule as the api_keys row-level security policies). Secret keys (``pk_``) carry scopes;
publishable keys (``pub_``) are for browsers: they may only list the agents they name and start
web sessions with them, from their allowed origins."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel, Field, model_validator

from api import pagination
from api.deps import Caller, Db, OrgAdmin
from api.errors import ApiError, not_found
from api.keys import new_key
from api.schemas_common import COMMON_ERRORS, Text, error_responses

router = APIRouter(prefix="/v1/api-keys", tags=["api keys"], responses=COMMON_ERRORS)


Scope = Literal["agents", "knowledge", "contacts", "calls", "admin"]
Origin = Annotated[str, Field(pattern=r"^https?://[A-Za-z0-9.-]+(:\d{1,5})?$", max_length=200)]


DEFAULT_SCOPES: tuple[Scope, ...] = ("agents", "knowledge", "contacts", "calls")


class ApiKeyIn(BaseModel):
    name: Text = Field(min_length=1, max_length=200, examples=["production dialer"])
    kind: Literal["secret", "publishable"] = "secret"
    scopes: list[Scope] = Field(
        default_factory=lambda: list(DEFAULT_SCOPES),
        max_length=5,
        description="Secret keys only: the API areas the key may use.",
    )
    agent_ids: list[UUID] = Field(
        default_factory=list, max_length=100, description="Publishable keys: their agents."
    )
    allowed_origins: list[Origin] = Field(
        default_factory=list, max_length=20, description="Browser origins allowed (empty: any)."
    )
    expires_at: datetime | None = None

    @model_validator(mode="after")
    def _kind_fields(self) -> ApiKeyIn:
        if self.kind == "publishable" and not self.agent_ids:
            raise ValueError("a publishable key needs agent_ids: the agents it may serve")
        if self.kind == "secret" and self.agent_ids:
            raise ValueError("agent_ids apply to publishable keys only")
        return self


class ApiKeyOut(BaseModel):
    id: UUID
    name: str
    prefix: str = Field(description="Identifies the key (pk_<prefix>_...); not a secret.")
    kind: str
    scopes: list[str]
    agent_ids: list[UUID] | None
    allowed_origins: list[str]
    expires_at: datetime | None
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


class ApiKeyCreated(ApiKeyOut):
    token: str = Field(description="The whole key. Shown only now: it is not stored.")


class ApiKeyPage(BaseModel):
    items: list[ApiKeyOut]
    next_cursor: str | None


_COLS = (
    "id, name, prefix, kind, scopes, agent_ids, allowed_origins, expires_at, created_at,"
    " last_used_at, revoked_at"
)


Admin = OrgAdmin


@router.post(
    "",
    status_code=201,
    response_model=ApiKeyCreated,
    dependencies=[Admin],
    responses=error_responses(403),
)
async def create_key(body: ApiKeyIn, who: Caller, db: Db) -> ApiKeyCreated:
    """Create a key. Copy ``token`` now: only its prefix and a hash are kept."""
    scopes = sorted(set(body.scopes)) if body.kind == "secret" else []
    if missing := set(scopes) - who.scopes:
        raise ApiError(403, "forbidden", f"a key can't grant scopes its creator lacks: {missing}")
    if body.agent_ids:
        known = await db.fetchval(
            "select count(*) from public.agents where org_id = $1 and id = any($2::uuid[])",
            who.org_id,
            body.agent_ids,
        )
        if known != len(set(body.agent_ids)):
            raise not_found("agent")
    key = new_key(body.kind)
    row = await db.fetchrow(
        "insert into public.api_keys (org_id, name, prefix, key_hash, kind, scopes, agent_ids,"
        f" allowed_origins, expires_at) values ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
        f" returning {_COLS}",
        who.org_id,
        body.name,
        key.prefix,
        key.hash,
        body.kind,
        scopes,
        body.agent_ids or None,
        body.allowed_origins,
        body.expires_at,
    )
    return ApiKeyCreated(**dict(row), token=key.token)


@router.get(
    "", response_model=ApiKeyPage, dependencies=[Admin], responses=error_responses(400, 403)
)
async def list_keys(
    who: Caller,
    db: Db,
    include_revoked: bool = False,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> ApiKeyPage:
    """Newest first. Never includes the secret or its hash."""
    args: list[Any] = [who.org_id, limit + 1]
    where = "org_id = $1" + ("" if include_revoked else " and revoked_at is null")
    if cond := pagination.after(cursor, args):
        where += f" and {cond}"
    rows = await db.fetch(
        f"select {_COLS} from public.api_keys where {where} "
        "order by created_at desc, id desc limit $2",
        *args,
    )
    items = [ApiKeyOut(**dict(r)) for r in rows[:limit]]
    return ApiKeyPage(items=items, next_cursor=pagination.next_cursor(rows, limit))


@router.delete(
    "/{key_id}",
    status_code=204,
    response_class=Response,
    dependencies=[Admin],
    responses=error_responses(403, 404),
)
async def revoke_key(key_id: UUID, who: Caller, db: Db) -> Response:
    """Revoke a key: it stops working at once. Revoking it again is a no-op (204)."""
    row = await db.fetchrow(
        "update public.api_keys set revoked_at = coalesce(revoked_at, now()) "
        "where id = $1 and org_id = $2 returning id",
        key_id,
        who.org_id,
    )
    if row is None:
        raise not_found("API key")
    return Response(status_code=204)
