"""The embedded default database: PostgreSQL 16 + pgvector from the ``pgserver`` package.

Used when no ``DATABASE_URL`` is set. The cluster lives in a folder Parley owns
(``Settings().data_dir / "pg"``) and is reused across runs, so data survives restarts.
pgserver listens on a Unix socket only (no TCP port), in the data folder (or, when that path is
too long for a socket, under the runtime dir). Several processes may share one cluster: the
first starts it, the last to exit stops it.

Running as root: Postgres refuses to run as root, so pgserver creates a ``pgserver`` system
user (with ``useradd``), gives it the data folder and runs the server as that user. The folders
above the data folder must then be traversable by that user: pgserver would make every one of
them world-*readable* (``/root`` included); Parley narrows that to adding only the traverse
bit (``o+x``) and logs which folders it changed.
"""

from __future__ import annotations

import asyncio
import logging
import os
import stat
import subprocess
import threading
import time
import warnings
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import quote

from loguru import logger

from parley.db.errors import EmbeddedPostgresError

_lock = threading.Lock()
_servers: dict[Path, Any] = {}  # pgdata -> pgserver.PostgresServer, started by this process


class _PgserverLogs(logging.Handler):
    """pgserver logs through ``logging``: forward to loguru (debug) and keep the last error."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.last_error = ""
        # Only while Parley calls pgserver: its atexit clean-up logs when sinks may be closed.
        self.active = False

    def emit(self, record: logging.LogRecord) -> None:
        if not self.active:
            return
        message = record.getMessage()
        if record.levelno >= logging.ERROR:
            self.last_error = message
        logger.debug("pgserver: {}", message)


_logs = _PgserverLogs()


def _traverse_only(path: Path) -> None:
    """Let another user reach ``path``: add the search bit (x) for group/other on its parents."""
    changed = []
    for parent in path.parents:
        mode = parent.stat().st_mode
        if mode & (stat.S_IXGRP | stat.S_IXOTH) != stat.S_IXGRP | stat.S_IXOTH:
            parent.chmod(mode | stat.S_IXGRP | stat.S_IXOTH)
            changed.append(str(parent))
    if changed:
        logger.info("Made {} traversable for the 'pgserver' user (g+x,o+x)", ", ".join(changed))


def _import_pgserver() -> ModuleType:
    try:
        with warnings.catch_warnings():  # platformdirs warns when XDG_RUNTIME_DIR is unset
            warnings.simplefilter("ignore")
            import pgserver
            import pgserver.postgres_server as server_module
    except ImportError as err:
        raise EmbeddedPostgresError(
            f"the embedded Postgres needs the 'pgserver' package ({err}) (fix: pip install "
            "pgserver, or set DATABASE_URL to use your own PostgreSQL 15+ with pgvector)"
        ) from err
    pg_logger = logging.getLogger("pgserver")
    if _logs not in pg_logger.handlers:
        pg_logger.addHandler(_logs)
        pg_logger.setLevel(logging.DEBUG)
        pg_logger.propagate = False
    if hasattr(server_module, "ensure_prefix_permissions"):
        server_module.ensure_prefix_permissions = _traverse_only
    return pgserver


def _dsn(server: Any, database: str = "postgres") -> str:
    info = server.get_postmaster_info()
    if info.socket_dir is not None:
        return f"postgresql://postgres@/{database}?host={quote(str(info.socket_dir), safe='/')}"
    return f"postgresql://postgres@{info.hostname}:{info.port}/{database}"


def _failure(pgdata: Path, err: BaseException, foreign: bool) -> EmbeddedPostgresError:
    elsewhere = "or set PARLEY_DATA_DIR (or PARLEY_DB_EMBEDDED_DIR) to another folder"
    version_file = pgdata / "PG_VERSION"
    version = version_file.read_text().strip() if version_file.is_file() else None
    if isinstance(err, NotADirectoryError | FileExistsError):
        fix = f"{pgdata} must be a folder: remove that file, {elsewhere}"
    elif foreign:
        fix = f"{pgdata} holds other files and no Postgres cluster: empty it, {elsewhere}"
    elif version is not None and version != "16":
        fix = (
            f"{pgdata} was created by PostgreSQL {version}: move it away (it holds your "
            f"data), {elsewhere}, or set DATABASE_URL"
        )
    elif isinstance(err, FileNotFoundError | PermissionError) and os.geteuid() == 0:
        fix = (
            "as root the server runs as a 'pgserver' user made with useradd: install useradd "
            "(Debian package passwd) or create that user, or run Parley as a normal user"
        )
    elif isinstance(err, subprocess.TimeoutExpired):
        fix = f"the server did not start in time; see its log {pgdata / 'log'}"
    else:
        fix = (
            f"see the server log {pgdata / 'log'}; if a crashed server left "
            f"{pgdata / 'postmaster.pid'} behind, delete that file; or set DATABASE_URL to use "
            "your own PostgreSQL 15+ with pgvector"
        )
    detail = [line for line in _logs.last_error.strip().splitlines() if line.strip()]
    log_tail = "".join(f"\n    {line}" for line in detail[-12:])
    return EmbeddedPostgresError(
        f"cannot start the embedded Postgres in {pgdata}: {type(err).__name__}: {err}"
        f"{log_tail}\n  fix: {fix}"
    )


def start_embedded(pgdata: Path) -> str:
    """Start (or attach to) the embedded cluster in ``pgdata``; returns its URL. Blocking.

    Once per process: later calls return the same URL at once. The first run creates the
    cluster (initdb, ~1-2 s), later runs only start it.
    """
    pgdata = pgdata.expanduser().resolve()
    with _lock:
        if pgdata in _servers:
            return _dsn(_servers[pgdata])
        pgserver = _import_pgserver()
        first = not (pgdata / "PG_VERSION").exists()
        foreign = first and pgdata.is_dir() and any(pgdata.iterdir())
        logger.info(
            "Starting the embedded Postgres in {}{}",
            pgdata,
            " (first run: creating the cluster)" if first else "",
        )
        started = time.monotonic()
        _logs.last_error, _logs.active = "", True
        try:
            if pgdata.exists() and not pgdata.is_dir():
                raise NotADirectoryError(f"{pgdata} is a file, not a folder")
            pgdata.parent.mkdir(parents=True, exist_ok=True)
            server = pgserver.get_server(pgdata, cleanup_mode="stop")
        except (OSError, subprocess.SubprocessError, AssertionError, RuntimeError) as err:
            raise _failure(pgdata, err, foreign) from err
        finally:
            _logs.active = False
        _servers[pgdata] = server
        logger.info(
            "Embedded Postgres ready in {:.1f} s (PostgreSQL 16, socket {})",
            time.monotonic() - started,
            server.get_postmaster_info().socket_dir,
        )
        return _dsn(server)


async def ensure_embedded(pgdata: Path, *, progress_every: float = 2.0) -> str:
    """:func:`start_embedded` without blocking the event loop, logging progress while it waits."""
    task = asyncio.ensure_future(asyncio.to_thread(start_embedded, pgdata))
    started = time.monotonic()
    while True:
        done, _ = await asyncio.wait({task}, timeout=progress_every)
        if done:
            return task.result()
        logger.info(
            "Still starting the embedded Postgres ({:.0f} s)...", time.monotonic() - started
        )


def stop_embedded(pgdata: Path) -> None:
    """Release this process's handle; the server stops when no other process uses it."""
    pgdata = pgdata.expanduser().resolve()
    with _lock:
        server = _servers.pop(pgdata, None)
        if server is None:
            return
        _logs.active = True
        try:
            server.cleanup()
        except (OSError, subprocess.SubprocessError) as err:
            raise EmbeddedPostgresError(
                f"cannot stop the embedded Postgres in {pgdata}: {err} (fix: stop it with "
                f"pg_ctl -D {pgdata} stop, or end its 'postgres' process)"
            ) from err
        finally:
            _logs.active = False
        logger.info("Embedded Postgres in {} released", pgdata)


def embedded_dir(data_dir: Path) -> Path:
    """Where the embedded cluster of a Parley data dir lives."""
    return data_dir / "pg"
