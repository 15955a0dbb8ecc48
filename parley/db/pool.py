"""asyncpg connections and pools, and running SQL as an end user under row-level security.

Two ways to reach the data:

* **Service paths** (workers, the scheduler, API-key auth, migrations, admin jobs): plain
  connections from :func:`connect` / :func:`create_pool`. They log in as the database owner,
  which owns the tables and therefore bypasses RLS: every query must filter by ``org_id``
  itself.
* **User paths** (API requests made on behalf of a signed-in user): wrap the work in
  :func:`as_user`. Inside that transaction the role is ``authenticated`` and ``auth.uid()`` is
  the user, exactly as PostgREST sets it up on Supabase, so the RLS policies decide which rows
  exist. :func:`as_anon` does the same for the ``anon`` role.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit
from uuid import UUID

import asyncpg
from pgvector.asyncpg import register_vector

from parley.db.errors import DatabaseError, DatabaseUnavailable

# Supabase's search path for its API roles: extension types and operators (vector, <=>)
# resolve without a schema prefix.
SEARCH_PATH = '"$user", public, extensions'
ApiRole = Literal["anon", "authenticated", "service_role"]
_ROLES = ("anon", "authenticated", "service_role")
_DRIVER = re.compile(r"^postgres(ql)?\+\w+://")


def normalize_dsn(dsn: str) -> str:
    """Accept SQLAlchemy-style URLs too: ``postgresql+asyncpg://`` becomes ``postgresql://``."""
    return _DRIVER.sub("postgresql://", dsn.strip())


def redact_dsn(dsn: str) -> str:
    """The URL with its password replaced by ``***`` (for logs and error messages)."""
    parts = urlsplit(dsn)
    if parts.password is None:
        return dsn
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


async def _init_connection(conn: asyncpg.Connection) -> None:
    """Register the pgvector codec (numpy arrays / lists in, ``pgvector.Vector`` out)."""
    schema = await conn.fetchval(
        "select n.nspname from pg_catalog.pg_type t"
        " join pg_catalog.pg_namespace n on n.oid = t.typnamespace"
        " where t.typname = 'vector' order by n.nspname = 'extensions' desc limit 1"
    )
    if schema is not None:
        await register_vector(conn, schema=schema)


def _unavailable(dsn: str, err: BaseException) -> DatabaseUnavailable:
    where = redact_dsn(dsn)
    if isinstance(err, asyncpg.InvalidCatalogNameError):
        fix = "create the database, or fix the database name in DATABASE_URL"
    elif isinstance(err, asyncpg.InvalidAuthorizationSpecificationError):
        fix = "check the user and password in DATABASE_URL"
    elif isinstance(err, ValueError):
        fix = "DATABASE_URL must look like postgresql://user:password@host:5432/dbname"
    else:
        fix = "check that the server is running and DATABASE_URL points at it"
    return DatabaseUnavailable(f"cannot connect to {where}: {err} (fix: {fix})")


async def connect(dsn: str, *, connect_timeout: float = 10.0) -> asyncpg.Connection:
    """One connection (service path: the owner role, RLS bypassed), pgvector codec registered."""
    dsn = normalize_dsn(dsn)
    try:
        conn = await asyncpg.connect(
            dsn,
            timeout=connect_timeout,
            server_settings={"search_path": SEARCH_PATH, "application_name": "parley"},
        )
    except (OSError, TimeoutError, ValueError, asyncpg.PostgresError) as err:
        raise _unavailable(dsn, err) from err
    try:
        await _init_connection(conn)
    except BaseException:
        await conn.close()
        raise
    return conn


async def create_pool(
    dsn: str, *, min_size: int = 1, max_size: int = 10, connect_timeout: float = 10.0
) -> asyncpg.Pool:
    """A connection pool (service path). Create it after :func:`parley.db.migrate` so that the
    ``vector`` type exists when each connection registers its codec."""
    dsn = normalize_dsn(dsn)
    try:
        pool = await asyncpg.create_pool(
            dsn,
            min_size=min_size,
            max_size=max_size,
            timeout=connect_timeout,
            init=_init_connection,
            server_settings={"search_path": SEARCH_PATH, "application_name": "parley"},
        )
    except (OSError, TimeoutError, ValueError, asyncpg.PostgresError) as err:
        raise _unavailable(dsn, err) from err
    return pool


def _claims(user_id: UUID | str | None, role: ApiRole, extra: Mapping[str, Any] | None) -> str:
    claims: dict[str, Any] = {"role": role, **(extra or {})}
    if user_id is not None:
        claims["sub"] = str(UUID(str(user_id)))
    return json.dumps(claims)


@asynccontextmanager
async def as_user(
    conn: asyncpg.Connection,
    user_id: UUID | str | None,
    *,
    role: ApiRole = "authenticated",
    claims: Mapping[str, Any] | None = None,
) -> AsyncIterator[asyncpg.Connection]:
    """Run a block as an end user, under RLS (user path).

    Opens a transaction on ``conn`` and, like PostgREST, does ``SET LOCAL ROLE <role>`` and
    sets ``request.jwt.claims`` (``{"sub": user_id, "role": role, **claims}``) and
    ``request.jwt.claim.sub`` / ``.role`` for the transaction only, so ``auth.uid()`` and the
    policies see the user. Everything reverts when the block ends (commit on success,
    rollback on error). ``conn`` must not already be in a transaction.
    """
    if role not in _ROLES:
        raise DatabaseError(f"role must be one of {', '.join(_ROLES)}, not {role!r}")
    if conn.is_in_transaction():
        raise DatabaseError(
            "as_user() needs a connection outside any transaction (the role and claims are "
            "transaction-local; nesting would leak them into the outer transaction)"
        )
    sub = "" if user_id is None else str(UUID(str(user_id)))
    async with conn.transaction():
        await conn.execute(f"set local role {role}")
        await conn.execute(
            "select set_config('request.jwt.claims', $1, true),"
            " set_config('request.jwt.claim.sub', $2, true),"
            " set_config('request.jwt.claim.role', $3, true)",
            _claims(user_id, role, claims),
            sub,
            role,
        )
        yield conn


@asynccontextmanager
async def as_anon(conn: asyncpg.Connection) -> AsyncIterator[asyncpg.Connection]:
    """Run a block as the ``anon`` role (no user), under RLS."""
    async with as_user(conn, None, role="anon") as c:
        yield c
