"""``parley up``: the whole embedded stack in one process, ready to talk to in a browser.

Starts the embedded Postgres, makes sure a local organization with the bundled agents and a
browser API key exist, serves the API with the voice tutor page, and opens
``/tutor#key=...``. Without LiveKit settings the page talks peer-to-peer to this process
(Pipecat SmallWebRTC); with them, sessions go through LiveKit rooms and ``parley worker``.
"""

from __future__ import annotations

import asyncio
import json
import os
import webbrowser
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated
from uuid import UUID

import asyncpg
import typer

from api.keys import hash_token, new_key
from parley import log
from parley.config import load_agent, preset_names
from parley.db import connect, database_url, migrate
from parley.db.settings import DatabaseSettings
from parley.settings import Settings, get_settings

ORG_NAME = "Local demo"


@dataclass(frozen=True)
class LocalSetup:
    org_id: UUID
    key: str
    agents: dict[str, UUID]  # preset name → agent id


def _key_file(settings: Settings) -> Path:
    return settings.data_dir / "browser-key"


async def _org(conn: asyncpg.Connection) -> UUID:
    found = await conn.fetchval(
        "select id from public.organizations where name = $1 order by created_at limit 1", ORG_NAME
    )
    if found is not None:
        return UUID(str(found))
    created = await conn.fetchval(
        "insert into public.organizations (name) values ($1) returning id", ORG_NAME
    )
    return UUID(str(created))


async def _agents(conn: asyncpg.Connection, org_id: UUID) -> dict[str, UUID]:
    """The bundled presets, added once (edits made through the API are kept)."""
    out: dict[str, UUID] = {}
    for preset in preset_names():
        cfg = load_agent(preset)
        row = await conn.fetchval(
            "select id from public.agents where org_id = $1 and name = $2", org_id, cfg.name
        )
        if row is None:
            row = await conn.fetchval(
                "insert into public.agents (org_id, config) values ($1, $2) returning id",
                org_id,
                json.dumps(cfg.model_dump(mode="json")),
            )
        out[preset] = UUID(str(row))
    return out


async def _key(
    conn: asyncpg.Connection, org_id: UUID, agents: list[UUID], saved: str | None
) -> str:
    """The page's publishable key (it may only list these agents and start sessions with
    them): the one saved by an earlier run while it is valid and covers them; else a new one.
    A full organization key saved by older versions is revoked and replaced."""
    if saved:
        row = await conn.fetchrow(
            "select id, kind, agent_ids from public.api_keys where org_id = $1 and key_hash = $2"
            " and revoked_at is null",
            org_id,
            hash_token(saved),
        )
        if (
            row is not None
            and row["kind"] == "publishable"
            and set(agents) <= set(row["agent_ids"])
        ):
            return saved
        if row is not None and row["kind"] != "publishable":
            await conn.execute(
                "update public.api_keys set revoked_at = now() where id = $1", row["id"]
            )
    key = new_key("publishable")
    await conn.execute(
        "insert into public.api_keys (org_id, name, prefix, key_hash, kind, scopes, agent_ids)"
        " values ($1, $2, $3, $4, 'publishable', '{}', $5)",
        org_id,
        "browser (parley up)",
        key.prefix,
        key.hash,
        agents,
    )
    return key.token


def _save_key(path: Path, token: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(token, encoding="utf-8")
    path.chmod(0o600)  # a credential: owner only


async def prepare(settings: Settings, db: DatabaseSettings) -> LocalSetup:
    path = _key_file(settings)
    saved = await asyncio.to_thread(
        lambda: path.read_text(encoding="utf-8").strip() if path.exists() else None
    )
    url = await database_url(settings, db_settings=db)
    await migrate(url, supabase_dir=db.supabase_dir)
    conn = await connect(url)
    try:
        async with conn.transaction():
            org_id = await _org(conn)
            agents = await _agents(conn, org_id)
            key = await _key(conn, org_id, list(agents.values()), saved)
    finally:
        await conn.close()
    if key != saved:
        await asyncio.to_thread(_save_key, path, key)
    return LocalSetup(org_id, key, agents)


def up(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.", min=1, max=65535)] = 8000,
    open_browser: Annotated[bool, typer.Option("--open/--no-open", help="Open the page.")] = True,
) -> None:
    """Run everything locally: database, API, the voice tutor page and the agent."""
    from api.cli import serve

    s = get_settings()
    log.configure(s.log_level, s.log_json)
    setup = asyncio.run(prepare(s, DatabaseSettings()))
    page = f"http://{host}:{port}/tutor#key={setup.key}"
    mode = "LiveKit rooms (run `parley worker` too)" if s.livekit_enabled else "peer-to-peer"
    typer.secho(f"\nParley is starting ({mode}). Open the voice tutor:\n  {page}\n", bold=True)
    if open_browser and (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        webbrowser.open(page)
    os.environ.setdefault("PARLEY_API_PREWARM_MODELS", "true")  # the first call starts warm
    serve(host=host, port=port, reload=False, access_log=False)
