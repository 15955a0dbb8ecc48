"""``parley db ...``: apply migrations, or reset the database (mounted by parley.cli)."""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer

from parley import log
from parley.db.database import database_url, describe_database
from parley.db.errors import DatabaseError
from parley.db.migrate import migrate as run_migrate
from parley.db.migrate import reset as run_reset
from parley.db.settings import DatabaseSettings
from parley.errors import ParleyError
from parley.settings import get_settings

app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    help="Database: apply migrations, reset. Without DATABASE_URL, uses the embedded Postgres.",
)

UrlOpt = Annotated[
    str | None,
    typer.Option(
        "--database-url",
        envvar="DATABASE_URL",
        show_envvar=True,
        help="postgresql://user:password@host:5432/db (default: the embedded Postgres).",
    ),
]
VerboseOpt = Annotated[bool, typer.Option("--verbose", "-v", help="Debug logs.")]


def _db_settings(url: str | None) -> DatabaseSettings:
    db = DatabaseSettings()
    return db.model_copy(update={"url": url}) if url else db


def _setup_logs(verbose: bool) -> None:
    s = get_settings()
    log.configure("DEBUG" if verbose else s.log_level, s.log_json)


def _fail(err: Exception) -> None:
    typer.secho(f"error: {err}", fg=typer.colors.RED, err=True)
    raise typer.Exit(2)


@app.command()
def migrate(database_url_: UrlOpt = None, verbose: VerboseOpt = False) -> None:
    """Apply pending migrations (supabase/migrations). Safe to run any time."""
    _setup_logs(verbose)
    db = _db_settings(database_url_)

    async def _run() -> list[str]:
        url = await database_url(get_settings(), db_settings=db)
        return await run_migrate(url, supabase_dir=db.supabase_dir)

    try:
        applied = asyncio.run(_run())
    except ParleyError as err:
        _fail(err)
        return
    if applied:
        typer.echo(f"applied {len(applied)} migration(s): {', '.join(applied)}")
    else:
        typer.echo("database is up to date")


@app.command()
def reset(
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    seed: Annotated[bool, typer.Option("--seed/--no-seed", help="Run supabase/seed.sql.")] = True,
    database_url_: UrlOpt = None,
    verbose: VerboseOpt = False,
) -> None:
    """Drop all Parley tables and data, re-apply the migrations, then seed.sql."""
    _setup_logs(verbose)
    db = _db_settings(database_url_)
    target = describe_database(get_settings(), db_settings=db)
    if not yes and not typer.confirm(f"Delete ALL data in {target}?", default=False):
        typer.echo("aborted; nothing was changed")
        raise typer.Exit(1)

    async def _run() -> list[str]:
        url = await database_url(get_settings(), db_settings=db)
        return await run_reset(url, supabase_dir=db.supabase_dir, with_seed=seed)

    try:
        applied = asyncio.run(_run())
    except (ParleyError, DatabaseError) as err:
        _fail(err)
        return
    typer.echo(
        f"database reset: {len(applied)} migration(s) applied" + (", seeded" if seed else "")
    )


@app.command("rotate-secrets")
def rotate_secrets(database_url_: UrlOpt = None, verbose: VerboseOpt = False) -> None:
    """Re-encrypt every organization secret under PARLEY_SECRETS_KEY (the key being retired
    stays in PARLEY_SECRETS_OLD_KEYS until this has run)."""
    from parley import secrets
    from parley.db import connect

    _setup_logs(verbose)
    db = _db_settings(database_url_)

    async def _run() -> int:
        settings = get_settings()
        conn = await connect(await database_url(settings, db_settings=db))
        try:
            async with conn.transaction():
                return await secrets.rotate(conn, secrets.key_ring(settings))
        finally:
            await conn.close()

    try:
        moved = asyncio.run(_run())
    except ParleyError as err:
        _fail(err)
        return
    typer.echo(f"re-encrypted {moved} secret(s) under the current key")
