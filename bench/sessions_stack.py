"""Processes and CPU accounting for ``bench/sessions.py``.

Everything the bench starts runs inside one network namespace (the LiveKit server on a veth
address, because ICE ignores loopback), as child processes whose CPU is read from /proc
(``psutil``) per process tree: the worker under test, the LiveKit server, the load generator,
the simulated providers and Postgres are each accounted separately.
"""

from __future__ import annotations

import contextlib
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import psutil

from tests.livekit.stack import (
    LiveKitStack,
    NsProcess,
    livekit_server_binary,
    start_livekit_stack,
    start_process,
)
from tests.netns import Namespace

T = TypeVar("T")
PYTHON = sys.executable


# -- namespace, LiveKit server, child processes ---------------------------------------------


@dataclass
class Stack:
    """A network namespace (``tests/netns.py``) with Redis + livekit-server running inside
    (``tests/livekit/stack.py``); ``spawn`` starts more processes inside it."""

    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="bench-sess-")))
    children: list[NsProcess] = field(default_factory=list)
    ns: Namespace | None = None
    livekit: LiveKitStack | None = None

    def start(self) -> LiveKitStack:
        binary = livekit_server_binary()
        if binary is None:
            raise RuntimeError("no livekit-server binary (fix: run scripts/setup.sh)")
        self.ns = Namespace.create()
        # No webhooks: nothing listens for them here.
        self.livekit = start_livekit_stack(self.ns, self.workdir, binary=binary, webhook_urls=())
        return self.livekit

    def spawn(
        self,
        name: str,
        argv: list[str],
        env: dict[str, str] | None = None,
        ready_log: str | None = None,
        timeout: float = 60.0,
    ) -> NsProcess:
        assert self.ns is not None
        child = start_process(
            self.ns,
            argv,
            name=name,
            log_dir=self.workdir,
            env=env,
            ready_log=ready_log,
            timeout=timeout,
        )
        self.children.append(child)
        return child

    def call(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` in a thread inside the namespace (LiveKit API calls from the bench)."""
        assert self.ns is not None
        return self.ns.call(fn, *args)

    def stop_all(self) -> None:
        for child in reversed(self.children):
            child.stop()
        self.children.clear()
        if self.livekit is not None:
            self.livekit.stop()
        if self.ns is not None:
            self.ns.close()


# -- CPU accounting -------------------------------------------------------------------------


def tree_cpu(pid: int) -> dict[int, float]:
    """CPU seconds (user + system) of ``pid`` and every descendant, per process."""
    out: dict[int, float] = {}
    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return out
    for p in procs:
        try:
            t = p.cpu_times()
            out[p.pid] = t.user + t.system
        except psutil.NoSuchProcess:
            pass
    return out


def machine_busy_s() -> float:
    """CPU seconds the whole machine spent busy (all cores), from /proc/stat."""
    t = psutil.cpu_times()
    return float(sum(t) - t.idle - getattr(t, "iowait", 0.0) - getattr(t, "guest", 0.0))


def tree_rss_mb(pid: int) -> float:
    total = 0
    try:
        root = psutil.Process(pid)
        for p in [root, *root.children(recursive=True)]:
            with contextlib.suppress(psutil.NoSuchProcess):
                total += p.memory_info().rss
    except psutil.NoSuchProcess:
        pass
    return total / 2**20


def cpu_delta(before: dict[int, float], after: dict[int, float]) -> float:
    """CPU used between two snapshots; processes born in between count from zero. A process
    that died in between loses its last slice (the bench keeps sessions alive over the window)."""
    return sum(t - before.get(pid, 0.0) for pid, t in after.items())


def tree_size(pid: int) -> int:
    try:
        return 1 + len(psutil.Process(pid).children(recursive=True))
    except psutil.NoSuchProcess:
        return 0
