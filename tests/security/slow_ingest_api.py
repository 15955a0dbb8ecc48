"""An API process whose ingestion is slow, for tests that kill it mid-document:
``python -m tests.security.slow_ingest_api DB_URL PORT DATA_DIR``."""

from __future__ import annotations

import sys
from pathlib import Path

import uvicorn

from api.app import create_app
from api.settings import ApiSettings
from parley.db.settings import DatabaseSettings
from parley.settings import Settings
from tests.api.conftest import JWT_SECRET
from tests.api.test_knowledge import SlowEmbedder


def main(db_url: str, port: int, data_dir: Path) -> None:
    app = create_app(
        settings=Settings(data_dir=data_dir),  # type: ignore[call-arg]
        api_settings=ApiSettings(supabase_jwt_secret=JWT_SECRET, rate_burst=10_000),
        db_settings=DatabaseSettings(url=db_url),
    )
    app.state.knowledge_embedder = SlowEmbedder(60.0)  # killed long before it finishes
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), Path(sys.argv[3]))
