"""``parley up`` prepares the local stack: an organization, the bundled agents, a browser key."""

from __future__ import annotations

from pathlib import Path

import pytest

from api.keys import hash_token
from api.up import prepare
from parley.config import preset_names
from parley.db import connect
from parley.db.settings import DatabaseSettings
from parley.settings import Settings


@pytest.mark.asyncio
async def test_prepare_is_idempotent_and_keeps_the_key(db_url: str, tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    db = DatabaseSettings(url=db_url)
    first = await prepare(settings, db)
    again = await prepare(settings, db)
    assert again == first  # same org, agents and key: nothing piles up across runs
    assert set(first.agents) == set(preset_names())
    key_file = tmp_path / "browser-key"
    assert key_file.read_text() == first.key and key_file.stat().st_mode & 0o077 == 0
    conn = await connect(db_url)
    try:
        assert await conn.fetchval("select count(*) from public.agents") == len(preset_names())
        assert (
            await conn.fetchval(
                "select org_id from public.api_keys where key_hash = $1", hash_token(first.key)
            )
            == first.org_id
        )
        # A revoked key is replaced, not reused.
        await conn.execute("update public.api_keys set revoked_at = now()")
    finally:
        await conn.close()
    third = await prepare(settings, db)
    assert third.key != first.key and third.agents == first.agents
    assert key_file.read_text() == third.key
