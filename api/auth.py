"""Who is calling, for which organization.

Two credentials, both ``Authorization: Bearer ...``:
- Supabase-issued JWTs (HS256 with the project secret, or ES256/RS256 keys from the project's
  JWKS). The organization is ``X-Parley-Org`` or, when the user belongs to one, that one.
  Queries then run as that user under row-level security.
- API keys ``pk_...``: bound to one organization; checked against the stored hash.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from functools import lru_cache
from typing import Any
from uuid import UUID

import asyncpg
import jwt

from api import keys
from api.errors import ApiError
from api.settings import ApiSettings

ALL_SCOPES = frozenset(keys.SCOPES)


@dataclass(frozen=True)
class Principal:
    org_id: UUID
    user_id: UUID | None = None  # set for JWT callers: RLS applies
    api_key_id: UUID | None = None
    kind: str = "user"  # user (JWT), secret or publishable (API keys)
    # JWT callers hold every scope: their role and row-level security decide.
    scopes: frozenset[str] = ALL_SCOPES
    agent_ids: frozenset[UUID] | None = None  # publishable keys: the agents they serve
    allowed_origins: tuple[str, ...] = ()

    @property
    def publishable(self) -> bool:
        return self.kind == "publishable"

    def may_use_agent(self, agent_id: UUID) -> bool:
        return self.agent_ids is None or agent_id in self.agent_ids

    @property
    def rate_key(self) -> str:
        return f"key:{self.api_key_id}" if self.api_key_id else f"user:{self.user_id}"


def _unauthorized(message: str) -> ApiError:
    return ApiError(401, "unauthorized", message)


@lru_cache(maxsize=4)
def _jwks_client(url: str) -> jwt.PyJWKClient:
    return jwt.PyJWKClient(url, cache_keys=True, lifespan=600, timeout=5)


async def verify_jwt(token: str, settings: ApiSettings) -> UUID:
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError as err:
        raise _unauthorized("the bearer token is neither an API key nor a JWT") from err
    alg = header.get("alg")
    key: Any
    if alg == "HS256":
        if not settings.supabase_jwt_secret:
            raise _unauthorized("HS256 tokens are not accepted: SUPABASE_JWT_SECRET is not set")
        key = settings.supabase_jwt_secret
    elif alg in ("ES256", "RS256") and settings.jwks_url:
        try:
            signing = await asyncio.to_thread(
                _jwks_client(settings.jwks_url).get_signing_key_from_jwt, token
            )
        except jwt.PyJWTError as err:
            raise _unauthorized(
                f"the token's signing key is not in the project's JWKS ({err})"
            ) from err
        key = signing.key
    else:
        raise _unauthorized(f"tokens signed with {alg!r} are not accepted")
    try:
        claims = jwt.decode(
            token,
            key,
            algorithms=[alg],
            audience=settings.jwt_audience,
            options={"require": ["exp", "sub"]},
        )
        return UUID(str(claims["sub"]))
    except (jwt.PyJWTError, ValueError) as err:
        raise _unauthorized(f"invalid token: {err}") from err


async def from_api_key(conn: asyncpg.Connection, token: str) -> Principal:
    prefix = keys.parse_prefix(token)
    if prefix is None:
        raise _unauthorized("malformed API key")
    row = await conn.fetchrow(
        "select id, org_id, key_hash, kind, scopes, agent_ids, allowed_origins,"
        " expires_at <= now() as expired"
        " from public.api_keys where prefix = $1 and revoked_at is null",
        prefix,
    )
    if row is None or not keys.matches(token, row["key_hash"]):
        raise _unauthorized("unknown or revoked API key")
    if row["expired"]:
        raise _unauthorized("this API key has expired")
    # At most once a minute: a write per request would serialise every request using the key.
    await conn.execute(
        "update public.api_keys set last_used_at = now() where id = $1 and "
        "(last_used_at is null or last_used_at < now() - interval '60 seconds')",
        row["id"],
    )
    agent_ids = row["agent_ids"]
    return Principal(
        org_id=row["org_id"],
        api_key_id=row["id"],
        kind=row["kind"],
        scopes=frozenset(row["scopes"]) if row["kind"] == "secret" else frozenset(),
        agent_ids=frozenset(agent_ids or ()) if row["kind"] == "publishable" else None,
        allowed_origins=tuple(row["allowed_origins"]),
    )


async def from_jwt(
    conn: asyncpg.Connection, token: str, org_header: str | None, settings: ApiSettings
) -> Principal:
    user_id = await verify_jwt(token, settings)
    orgs = [
        r["org_id"]
        for r in await conn.fetch(
            "select org_id from public.memberships where user_id = $1 order by created_at", user_id
        )
    ]
    if org_header:
        try:
            wanted = UUID(org_header)
        except ValueError as err:
            raise ApiError(400, "bad_request", "X-Parley-Org must be an organization id") from err
        if wanted not in orgs:
            raise ApiError(403, "forbidden", "you are not a member of that organization")
        return Principal(org_id=wanted, user_id=user_id)
    if len(orgs) == 1:
        return Principal(org_id=orgs[0], user_id=user_id)
    if not orgs:
        raise ApiError(403, "forbidden", "you are not a member of any organization")
    raise ApiError(400, "org_required", "you belong to several organizations: send X-Parley-Org")
