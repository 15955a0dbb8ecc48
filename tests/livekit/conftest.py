"""Fixtures for tests against a real LiveKit server inside a network namespace.

Session-scoped (one per test run):
  ``netns``          tests.netns.Namespace: 10.213.0.1 (v0) ⇄ 10.213.0.2 (v1), lo with 127.0.0.2.
                     ``netns.http(method, url, json_body=..., headers=...)`` -> (status, body) and
                     ``netns.call(fn)`` reach servers inside from pytest; ``netns.popen/run`` run
                     commands inside.
  ``livekit_stack``  tests.livekit.stack.LiveKitStack: Redis + livekit-server v1.13.5 on
                     10.213.0.1 with random keys. ``.url`` (ws://10.213.0.1:7880), ``.http_url``,
                     ``.api_key``, ``.api_secret``, ``.redis_address``, ``.env()`` (LIVEKIT_*
                     variables), ``.token(identity, room)``, ``.log_path``. Webhooks go to
                     ``stack.WEBHOOK_URL`` (http://10.213.0.1:8000/v1/livekit/webhook).

Function-scoped:
  ``ns_process``     factory: start a long-running process inside, ready-checked, stopped (SIGTERM,
                     then SIGKILL) after the test::

                         api = ns_process([".venv/bin/parley", "serve", "--host", "10.213.0.1",
                                           "--port", "8000"], name="api",
                                          env={**livekit_stack.env(), "DATABASE_URL": db_url},
                                          ready_url=f"{API_URL}/healthz")
                         worker = ns_process([...], name="worker", ready_log="registered worker")

                     returns tests.livekit.stack.NsProcess (``.log()``, ``.wait_log(regex)``,
                     ``.alive()``, ``.stop()``); logs land in the test's tmp dir.
  ``ns_client``      ``ns_client(module_or_script, args=(), env=None, timeout=60)`` runs a Python
                     client inside (tests.livekit.stack.run_in_ns bound to ``netns``) and returns
                     the JSON it printed last; ``env`` adds to ours (pass ``livekit_stack.env()``
                     and secrets there, not in args). Clients live in tests/livekit/clients/
                     (``common.py``: ``token``, ``ice_report``, ``emit``, audio helpers).

Parley itself (``parley serve`` / ``parley worker`` / the fake LLM started with ``ns_process``,
seeded organizations, call rows): tests.livekit.parley_stack.

When a test fails, the tails of the logs of every process still running (livekit-server, Redis,
yours) are added to its report. Without root or ``ip netns`` the tests skip; under CI (CI set)
as root they fail instead, since CI must run them.
"""

from __future__ import annotations

import itertools
import os
import shutil
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from tests.livekit.stack import (
    ACTIVE_LOGS,
    LiveKitStack,
    NsProcess,
    livekit_server_binary,
    run_in_ns,
    start_livekit_stack,
    start_process,
    tail,
)
from tests.netns import Namespace, NetnsUnavailable, unavailable_reason


def _unavailable(reason: str) -> None:
    # CI runs as root with everything installed by scripts/setup.sh: missing pieces are bugs there.
    if os.environ.get("CI") and os.geteuid() == 0:
        pytest.fail(f"LiveKit test infrastructure unavailable under CI: {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def netns() -> Iterator[Namespace]:
    """A private network namespace for the whole session (see tests/netns.py)."""
    reason = unavailable_reason()
    if reason:
        _unavailable(reason)
    try:
        ns = Namespace.create()
    except NetnsUnavailable as exc:
        _unavailable(str(exc))
        raise
    try:
        yield ns
    finally:
        ns.close()


@pytest.fixture(scope="session")
def livekit_stack(
    netns: Namespace, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveKitStack]:
    """Redis + livekit-server running inside ``netns`` for the whole session."""
    binary = livekit_server_binary()
    if binary is None:
        _unavailable("livekit-server is not built: run scripts/setup.sh (builds it with Go)")
    if shutil.which("redis-server") is None:
        _unavailable("redis-server is not installed: apt-get install redis-server")
    assert binary is not None
    stack = start_livekit_stack(netns, tmp_path_factory.mktemp("livekit"), binary=binary)
    try:
        yield stack
    finally:
        stack.stop()


@pytest.fixture
def ns_process(netns: Namespace, tmp_path: Path) -> Iterator[Callable[..., NsProcess]]:
    """Factory: ``ns_process(argv, *, name, env=None, ready_url=None, ready_tcp=None,
    ready_log=None, timeout=30.0) -> NsProcess`` (see tests.livekit.stack.start_process)."""
    started: list[NsProcess] = []

    def _start(argv: Sequence[str | os.PathLike[str]], *, name: str, **kw: Any) -> NsProcess:
        proc = start_process(netns, argv, name=name, log_dir=tmp_path / "logs", **kw)
        started.append(proc)
        return proc

    yield _start
    for proc in reversed(started):
        proc.stop()


@pytest.fixture
def ns_client(netns: Namespace, tmp_path: Path) -> Iterator[Callable[..., Any]]:
    """``ns_client(module_or_script, args=(), env=None, timeout=60.0)`` -> the client's JSON.
    Each run's stderr is kept in the test's tmp dir (``logs/client-N.log``) and shown on failure.
    """
    names: list[str] = []
    numbers = itertools.count(1)

    def _run(
        module_or_script: str | os.PathLike[str],
        args: Sequence[str] = (),
        env: dict[str, str] | None = None,
        timeout: float = 60.0,
    ) -> Any:
        name = f"client-{next(numbers)}"  # next() is atomic: clients may run from threads
        names.append(name)
        log_path = tmp_path / "logs" / f"{name}.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        ACTIVE_LOGS[name] = log_path
        return run_in_ns(netns, module_or_script, args, env, timeout, log_path=log_path)

    yield _run
    for name in names:
        ACTIVE_LOGS.pop(name, None)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """On failure, attach the end of each running process's log to the report."""
    outcome = yield
    report = outcome.get_result()
    if report.failed:
        for name, path in list(ACTIVE_LOGS.items()):
            report.sections.append((f"log: {name} ({path})", tail(path, 80)))
