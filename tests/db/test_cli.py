"""``parley db migrate`` / ``parley db reset`` (the Typer sub-app in parley.db.cli)."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from parley.db.cli import app
from parley.db.pool import connect
from parley.db.settings import DEFAULT_SUPABASE_DIR
from parley.db.testing import run_sync

runner = CliRunner()


@pytest.fixture(autouse=True)
def _keep_test_logging(monkeypatch: pytest.MonkeyPatch) -> None:
    """The CLI points loguru at sys.stderr, which CliRunner swaps for a buffer it then closes."""
    monkeypatch.setattr("parley.db.cli.log.configure", lambda *a, **k: None)


def _orgs(url: str) -> int:
    async def _count() -> int:
        conn = await connect(url)
        try:
            n: int = await conn.fetchval("select count(*) from public.organizations")
            return n
        finally:
            await conn.close()

    return run_sync(_count())


def test_migrate_command(empty_db_url: str) -> None:
    result = runner.invoke(app, ["migrate", "--database-url", empty_db_url])
    assert result.exit_code == 0, result.output
    count = len(list(DEFAULT_SUPABASE_DIR.joinpath("migrations").glob("*.sql")))
    assert f"applied {count} migration(s)" in result.output
    result = runner.invoke(app, ["migrate", "--database-url", empty_db_url])
    assert result.exit_code == 0, result.output
    assert "up to date" in result.output


def test_reset_asks_first(db_url: str) -> None:
    result = runner.invoke(app, ["reset", "--database-url", db_url], input="n\n")
    assert result.exit_code == 1
    assert "Delete ALL data" in result.output
    assert "aborted" in result.output
    assert _orgs(db_url) == 0
    result = runner.invoke(app, ["reset", "--database-url", db_url], input="y\n")
    assert result.exit_code == 0, result.output
    assert _orgs(db_url) == 1
    result = runner.invoke(app, ["reset", "--yes", "--no-seed", "--database-url", db_url])
    assert result.exit_code == 0, result.output
    assert _orgs(db_url) == 0


def test_unreachable_database_is_one_clear_line() -> None:
    url = "postgresql://postgres@/postgres?host=/nonexistent-socket-dir"
    result = runner.invoke(app, ["migrate", "--database-url", url])
    assert result.exit_code == 2
    assert "error: cannot connect to" in result.output
    assert "Traceback" not in result.output
