"""``parley keys create`` (an API key for an organization) and ``parley serve`` (the API).

Mounted by parley/cli.py: ``app.add_typer(keys_app, name="keys")`` and
``app.command()(serve)``.
"""

from __future__ import annotations

import asyncio
import signal
from typing import Annotated
from uuid import UUID

import asyncpg
import typer

from api.keys import SCOPES, new_key
from parley import log
from parley.db import connect, database_url, describe_database, migrate, stop_embedded
from parley.db.cli import UrlOpt
from parley.db.embedded import embedded_dir
from parley.db.settings import DatabaseSettings
from parley.errors import ParleyError
from parley.settings import get_settings

keys_app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    help="API keys: create one for an organization (the key is printed once, never stored).",
)


@keys_app.callback()
def _keys() -> None:
    """API keys of an organization."""  # a group even with one command: `keys create`


class OrgError(ParleyError):
    """The organization cannot be chosen (unknown, ambiguous, or not creatable here)."""


def _fail(err: Exception) -> None:
    typer.secho(f"error: {err}", fg=typer.colors.RED, err=True)
    raise typer.Exit(2)


async def _find_org(conn: asyncpg.Connection, org: str, *, may_create: bool) -> tuple[UUID, bool]:
    """(org id, whether it was created). An id must exist; a name is created only when
    ``may_create`` (the embedded database: a local setup, not a shared deployment)."""
    try:
        org_id = UUID(org)
    except ValueError:
        pass
    else:
        if await conn.fetchval("select 1 from public.organizations where id = $1", org_id):
            return org_id, False
        raise OrgError(f"no organization has the id {org} (fix: check it, or pass its name)")
    name = org.strip()
    if not 1 <= len(name) <= 200:
        raise OrgError("--org must be an organization id or a name of 1-200 characters")
    ids = [
        r["id"]
        for r in await conn.fetch(
            "select id from public.organizations where name = $1 order by created_at", name
        )
    ]
    if len(ids) == 1:
        return ids[0], False
    if ids:
        listed = ", ".join(str(i) for i in ids)
        raise OrgError(f"several organizations are named {name!r}: pass --org ID ({listed})")
    if not may_create:
        raise OrgError(
            f"no organization named {name!r} (fix: create it in the app, or pass --org with "
            "its id; organizations are created here only in the embedded database)"
        )
    created: UUID = await conn.fetchval(
        "insert into public.organizations (name) values ($1) returning id", name
    )
    return created, True


async def create_key(org: str, name: str, db: DatabaseSettings) -> tuple[str, UUID, bool]:
    """Migrate, find (or, embedded only, create) the organization, and add a key to it.
    Returns (token, org id, whether the organization was created)."""
    url = await database_url(get_settings(), db_settings=db)
    await migrate(url, supabase_dir=db.supabase_dir)
    conn = await connect(url)
    try:
        async with conn.transaction():  # service path (the owner): no RLS, filters explicit
            org_id, created = await _find_org(conn, org, may_create=db.url is None)
            key = new_key()
            await conn.execute(
                # The operator's key for the organization: every scope, key administration too.
                "insert into public.api_keys (org_id, name, prefix, key_hash, scopes) "
                "values ($1, $2, $3, $4, $5)",
                org_id,
                name,
                key.prefix,
                key.hash,
                list(SCOPES),
            )
    finally:
        await conn.close()
    return key.token, org_id, created


@keys_app.command("create")
def create(
    org: Annotated[
        str,
        typer.Option(
            "--org",
            help="Organization name or id. A missing name is created (embedded database only).",
        ),
    ],
    name: Annotated[str, typer.Option("--name", help="A label for the key.")] = "cli",
    database_url_: UrlOpt = None,
) -> None:
    """Print a new API key (pk_...) for ORG on stdout; everything else goes to stderr, so
    ``export PARLEY_API_KEY=$(parley keys create --org demo)`` works."""
    s = get_settings()
    log.configure("WARNING", s.log_json)
    db = DatabaseSettings()
    if database_url_:
        db = db.model_copy(update={"url": database_url_})
    if not 1 <= len(name) <= 200:
        _fail(OrgError("--name must be 1-200 characters"))
    try:
        token, org_id, created = asyncio.run(create_key(org, name, db))
    except ParleyError as err:
        _fail(err)
        return
    if created:
        typer.echo(f"created organization {org!r} ({org_id})", err=True)
    typer.echo(token)
    typer.echo(
        f"API key {name!r} for organization {org_id} in {describe_database(s, db_settings=db)}."
        " It is shown only now: keep it.",
        err=True,
    )


def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.", min=1, max=65535)] = 8000,
    reload: Annotated[bool, typer.Option(help="Restart on code changes (development).")] = False,
    access_log: Annotated[bool, typer.Option(help="Log each request.")] = True,
) -> None:
    """Run the API with uvicorn (api.app:create_app).

    Without DATABASE_URL it starts the embedded Postgres; pending migrations are applied.
    """
    import uvicorn

    s = get_settings()
    log.configure(s.log_level, s.log_json)

    def _exit(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)

    # uvicorn re-raises SIGTERM once it has shut down; with the default handler the process
    # would die there, skipping the clean-up below (and the embedded Postgres would run on).
    signal.signal(signal.SIGTERM, _exit)
    try:
        uvicorn.run(
            "api.app:create_app",
            factory=True,
            host=host,
            port=port,
            reload=reload,
            access_log=access_log,
        )
    finally:
        db = DatabaseSettings()
        if db.url is None:
            # Release the embedded Postgres this process started (no-op otherwise).
            stop_embedded(db.embedded_dir or embedded_dir(s.data_dir))
