"""Processes inside a test network namespace: a real Redis + livekit-server, long-running helpers
(``parley worker``, ``parley serve``), and one-shot Python clients that print JSON.

Everything WebRTC runs inside the namespace (see tests/netns.py); pytest stays outside and talks
to it through ``ns.http`` / ``ns.call`` / ``run_in_ns``. The database is a Unix socket, which
works across namespaces, so a ``db_url`` can be handed to processes inside as is.

Fixed addresses inside the namespace (constants below)::

    10.213.0.1:7880  livekit-server HTTP/WebSocket (``LiveKitStack.url`` = ws://10.213.0.1:7880)
    10.213.0.1:7881  ICE/TCP          10.213.0.1:7882/udp  ICE/UDP (one muxed port)
    10.213.0.1:6379  Redis (no persistence)
    10.213.0.1:8000  free for the API (``parley serve``); the server posts webhooks to
                     ``WEBHOOK_URL`` = http://10.213.0.1:8000/v1/livekit/webhook
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tests.netns import HOST_A, Namespace, clean_env

ROOT = Path(__file__).resolve().parents[2]
# The venv's interpreter (pytest runs from it): clients inside use the same packages.
PYTHON = sys.executable
CLIENTS = Path(__file__).resolve().parent / "clients"

LIVEKIT_PORT = 7880
RTC_TCP_PORT = 7881
RTC_UDP_PORT = 7882
REDIS_PORT = 6379
API_PORT = 8000
API_URL = f"http://{HOST_A}:{API_PORT}"
WEBHOOK_URL = f"{API_URL}/v1/livekit/webhook"
# Handed to clients as their STUN server: nothing listens there. Without any STUN server the
# server would hand clients Google's public ones (unreachable from the namespace anyway).
DEAD_STUN = f"{HOST_A}:3478"

# Logs of the processes that are running now: the conftest attaches their tails to failed tests.
ACTIVE_LOGS: dict[str, Path] = {}
_logs_lock = threading.Lock()


def cache_dir() -> Path:
    return Path(os.environ.get("PARLEY_CACHE_DIR") or Path.home() / ".cache" / "parley")


def livekit_server_binary() -> Path | None:
    """The livekit-server built by scripts/setup.sh (``$LIVEKIT_SERVER_BIN`` overrides)."""
    candidates = [
        os.environ.get("LIVEKIT_SERVER_BIN", ""),
        str(cache_dir() / "bin" / "livekit-server"),
        str(cache_dir() / "bin" / "server"),  # go install's own name (older set-ups)
        shutil.which("livekit-server") or "",
    ]
    for cand in candidates:
        if cand and os.access(cand, os.X_OK):
            return Path(cand)
    return None


def tail(path: Path, lines: int = 60, width: int = 400) -> str:
    """The last ``lines`` lines of a log file ('' when missing), each cut to ``width`` chars
    (livekit-server logs whole SDPs on one line)."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(
        line if len(line) <= width else line[:width] + " …" for line in text.splitlines()[-lines:]
    )


# -- long-running processes -------------------------------------------------------------------


@dataclass
class NsProcess:
    """A process running inside the namespace, its output (stdout+stderr) in ``log_path``."""

    name: str
    ns: Namespace
    proc: subprocess.Popen[bytes]
    log_path: Path

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def log_tail(self, lines: int = 60) -> str:
        return tail(self.log_path, lines)

    def wait_log(self, pattern: str, timeout: float = 20.0) -> re.Match[str]:
        """Wait until the log matches the regex ``pattern`` (fails fast if the process exits)."""
        deadline = time.monotonic() + timeout
        while True:
            found = re.search(pattern, self.log())
            if found:
                return found
            if not self.alive():
                raise RuntimeError(
                    f"{self.name} exited before logging {pattern!r}:\n{self.log_tail()}"
                )
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"{self.name}: no {pattern!r} in {timeout:.0f} s:\n{self.log_tail()}"
                )
            time.sleep(0.05)

    def stop(self, grace: float = 5.0) -> int | None:
        """SIGTERM, then SIGKILL after ``grace`` seconds; returns the exit code. Idempotent.

        Only the main process gets SIGTERM (it shuts its children down itself); whatever of its
        process group is left afterwards (e.g. job processes of a worker) gets SIGKILL.
        """
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(grace)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        with _logs_lock:
            ACTIVE_LOGS.pop(self.name, None)
        return self.proc.returncode


def start_process(
    ns: Namespace,
    argv: Sequence[str | os.PathLike[str]],
    *,
    name: str,
    log_dir: Path,
    env: Mapping[str, str] | None = None,
    cwd: Path = ROOT,
    ready_url: str | None = None,
    ready_tcp: tuple[str, int] | None = None,
    ready_log: str | None = None,
    timeout: float = 30.0,
) -> NsProcess:
    """Start ``argv`` inside ``ns`` and wait until it is ready; you must ``.stop()`` it.

    ``env``: extra variables on top of ours. Readiness (all given ones must pass, checked from
    inside the namespace): ``ready_url`` answers HTTP < 500, ``ready_tcp`` accepts connections,
    ``ready_log`` (regex) appears in its output. On failure the process is stopped and the error
    carries the tail of its log.
    """
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"{name}.log"
    with log_path.open("wb") as log:
        proc = ns.popen(
            list(argv),
            env=clean_env(None, **{"PYTHONUNBUFFERED": "1", **(env or {})}),
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: stop() can reap its children
        )
    handle = NsProcess(name=name, ns=ns, proc=proc, log_path=log_path)
    with _logs_lock:
        ACTIVE_LOGS[name] = log_path
    try:
        if ready_url:
            ns.wait_http(ready_url, timeout, alive=handle.alive)
        if ready_tcp:
            ns.wait_tcp(*ready_tcp, timeout=timeout, alive=handle.alive)
        if ready_log:
            handle.wait_log(ready_log, timeout)
    except Exception as exc:
        code = proc.poll()
        handle.stop(grace=2.0)
        exited = f" (it exited with {code})" if code is not None else ""
        raise RuntimeError(
            f"{name} did not get ready{exited}: {exc}\n--- {log_path} ---\n{tail(log_path)}"
        ) from exc
    return handle


# -- one-shot Python clients ------------------------------------------------------------------


def run_in_ns(
    ns: Namespace,
    module_or_script: str | os.PathLike[str],
    args: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
    timeout: float = 60.0,
    log_path: Path | None = None,
) -> Any:
    """Run a Python client inside ``ns`` with the venv's interpreter; return its JSON result.

    ``module_or_script``: a path to a ``.py`` file, or a module name such as
    ``"tests.livekit.clients.sine_pubsub"`` (run with ``-m`` from the repository root).
    ``env``: extra variables on top of ours (pass secrets here, not in ``args``). The client
    must print one JSON value as its last line of stdout; logs belong on stderr (kept in
    ``log_path`` when given). A non-zero exit or a timeout raises ``AssertionError`` with the end
    of its stderr.
    """
    target = str(module_or_script)
    is_script = target.endswith(".py") or os.sep in target
    argv = [PYTHON, target] if is_script else [PYTHON, "-m", target]
    extra = {"PYTHONUNBUFFERED": "1", "PYTHONPATH": str(ROOT), **(env or {})}
    try:
        done = ns.run(
            [*argv, *args],
            env=clean_env(None, **extra),
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired as exc:
        err = exc.stderr.decode(errors="replace") if isinstance(exc.stderr, bytes) else exc.stderr
        if log_path:
            log_path.write_text(err or "")
        raise AssertionError(f"{target} timed out after {timeout} s:\n{_last(err or '')}") from exc
    if log_path:
        log_path.write_text(done.stderr)
    if done.returncode != 0:
        raise AssertionError(f"{target} exited {done.returncode}:\n{_last(done.stderr)}")
    lines = [line for line in done.stdout.splitlines() if line.strip()]
    if not lines:
        raise AssertionError(f"{target} printed no JSON:\n{_last(done.stderr)}")
    return json.loads(lines[-1])


def _last(text: str, lines: int = 40) -> str:
    return "\n".join(text.splitlines()[-lines:])


# -- Redis + LiveKit --------------------------------------------------------------------------


@dataclass
class LiveKitStack:
    """A running livekit-server (+ Redis) inside ``ns``. Hand ``env()`` to workers and APIs."""

    ns: Namespace
    url: str  # ws://10.213.0.1:7880 (what clients, workers and LIVEKIT_URL use)
    http_url: str  # http://10.213.0.1:7880 (twirp API; livekit.api accepts either)
    api_key: str
    api_secret: str
    redis_address: str  # 10.213.0.1:6379
    config_path: Path
    server: NsProcess
    redis: NsProcess

    @property
    def log_path(self) -> Path:
        return self.server.log_path

    def env(self) -> dict[str, str]:
        """LIVEKIT_* variables for Parley processes and clients (settings read these)."""
        return {
            "LIVEKIT_URL": self.url,
            "LIVEKIT_PUBLIC_URL": self.url,
            "LIVEKIT_API_KEY": self.api_key,
            "LIVEKIT_API_SECRET": self.api_secret,
        }

    def token(self, identity: str, room: str, *, ttl_s: int = 600, name: str | None = None) -> str:
        """A participant token for ``room`` (join, publish, subscribe, data)."""
        from datetime import timedelta

        from livekit import api

        grants = api.VideoGrants(room_join=True, room=room)
        return (
            api.AccessToken(self.api_key, self.api_secret)
            .with_identity(identity)
            .with_name(name or identity)
            .with_ttl(timedelta(seconds=ttl_s))
            .with_grants(grants)
            .to_jwt()
        )

    def stop(self) -> None:
        self.server.stop(grace=5.0)
        self.redis.stop(grace=3.0)


def livekit_config(
    api_key: str, api_secret: str, *, webhook_urls: Sequence[str] = (WEBHOOK_URL,)
) -> dict[str, Any]:
    """The server's YAML config as a dict: only namespace addresses, no public STUN, Redis."""
    config: dict[str, Any] = {
        "port": LIVEKIT_PORT,
        "bind_addresses": [HOST_A],
        "rtc": {
            "tcp_port": RTC_TCP_PORT,
            "udp_port": RTC_UDP_PORT,
            # Never ask a public STUN server for an external address; announce 10.213.0.1.
            "use_external_ip": False,
            "node_ip": HOST_A,
            "stun_servers": [DEAD_STUN],
            "enable_loopback_candidate": False,
            "ips": {"includes": [f"{HOST_A}/32"]},
        },
        "redis": {"address": f"{HOST_A}:{REDIS_PORT}"},
        "keys": {api_key: api_secret},
        "logging": {"level": "info", "pion_level": "warn"},
        "room": {"empty_timeout": 30, "departure_timeout": 5},
    }
    if webhook_urls:
        config["webhook"] = {"api_key": api_key, "urls": list(webhook_urls)}
    return config


def start_livekit_stack(
    ns: Namespace,
    workdir: Path,
    *,
    binary: Path,
    webhook_urls: Sequence[str] = (WEBHOOK_URL,),
    timeout: float = 30.0,
) -> LiveKitStack:
    """Start Redis and livekit-server inside ``ns`` (fresh random keys); stop with ``.stop()``."""
    workdir.mkdir(parents=True, exist_ok=True)
    # In memory only (no RDB/AOF), reachable only inside the namespace.
    redis_opts = {"bind": HOST_A, "port": str(REDIS_PORT), "save": "", "appendonly": "no",
                  "protected-mode": "no", "dir": str(workdir)}  # fmt: skip
    redis_args = [item for key, value in redis_opts.items() for item in (f"--{key}", value)]
    redis = start_process(
        ns,
        ["redis-server", *redis_args],
        name="redis",
        log_dir=workdir,
        ready_tcp=(HOST_A, REDIS_PORT),
        timeout=timeout,
    )
    api_key = "API" + secrets.token_hex(6)
    api_secret = secrets.token_urlsafe(32)
    config_path = workdir / "livekit.yaml"
    config = livekit_config(api_key, api_secret, webhook_urls=webhook_urls)
    config_path.write_text(yaml.safe_dump(config))
    config_path.chmod(0o600)
    try:
        server = start_process(
            ns,
            [binary, "--config", config_path],
            name="livekit-server",
            log_dir=workdir,
            ready_url=f"http://{HOST_A}:{LIVEKIT_PORT}/",
            timeout=timeout,
        )
    except BaseException:
        redis.stop()
        raise
    return LiveKitStack(
        ns=ns,
        url=f"ws://{HOST_A}:{LIVEKIT_PORT}",
        http_url=f"http://{HOST_A}:{LIVEKIT_PORT}",
        api_key=api_key,
        api_secret=api_secret,
        redis_address=f"{HOST_A}:{REDIS_PORT}",
        config_path=config_path,
        server=server,
        redis=redis,
    )


def wait_for(check: Callable[[], Any], timeout: float = 10.0, what: str = "condition") -> Any:
    """Poll ``check()`` until it returns something truthy; return it (TimeoutError otherwise)."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not met after {timeout:.0f} s")
        time.sleep(0.1)
