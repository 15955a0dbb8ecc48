"""A private network namespace for WebRTC tests: ICE ignores loopback, and test traffic must never
touch the machine's own interfaces, so servers and clients run inside a namespace of their own.

Layout of every namespace (see docs in stack-facts)::

    lo  127.0.0.1/8 + 127.0.0.2/8   (127.0.0.2: aioice offers it, for loopback-only peers)
    v0  10.213.0.1/24  ──veth──  v1  10.213.0.2/24

There is no route out: anything inside can reach only these addresses. Servers usually bind to
``HOST_A`` (10.213.0.1); a client's traffic then leaves from ``HOST_A`` or ``HOST_B``.

Three ways to get inside:
  ``ns.popen(argv)`` / ``ns.run(argv)``  a subprocess via ``ip netns exec`` (same files, same
                                       users; only the network differs)
  ``ns.call(fn, *args)``               run ``fn`` in a thread of *this* process that joined the
                                       namespace (sockets it opens live there): quick HTTP
                                       probes and requests from pytest itself
  ``ns.http(method, url, ...)``        one HTTP request made that way, JSON in and out

The root namespace is no substitute: 10.213.0.x is not routed there (on this machine an egress
proxy even answers for it), so never connect to these addresses without one of the above.

``Namespace.create()`` raises ``NetnsUnavailable`` (with the reason) when not root or when
``ip netns`` does not work; the pytest fixtures turn that into a skip, or a failure under CI.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import re
import shutil
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from itertools import count
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

HOST_A = "10.213.0.1"
HOST_B = "10.213.0.2"
SUBNET_PREFIX = "10.213.0."
PREFIX = "parley-"
NETNS_DIR = Path("/var/run/netns")
_CLONE_NEWNET = 0x40000000
_counter = count(1)
# Proxies make no sense inside (there is no way out) and would swallow requests to 10.213.0.x.
_PROXY_VARS = ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY")


class NetnsUnavailable(RuntimeError):
    """Network namespaces cannot be used here (the message says why)."""


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check, timeout=10)


def unavailable_reason() -> str | None:
    """Why namespaces cannot be used here, or None when they can."""
    if os.geteuid() != 0:
        return "network namespaces need root (run the LiveKit/WebRTC tests as root, as CI does)"
    if shutil.which("ip") is None:
        return "`ip` (iproute2) is not installed: apt-get install iproute2"
    probe = _ip("netns", "list", check=False)
    if probe.returncode != 0:
        return f"`ip netns` does not work here: {probe.stderr.strip()}"
    return None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _kill_all(pids: Sequence[int], grace: float = 2.0) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        live = [p for p in pids if _pid_alive(p)]
        for pid in live:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        deadline = time.monotonic() + grace
        while live and time.monotonic() < deadline:
            time.sleep(0.05)
            live = [p for p in live if _pid_alive(p) and not _is_zombie(p)]
        if not live:
            return


def _is_zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1].startswith("Z")
    except (OSError, IndexError):
        return True


def _pids_in(name: str) -> list[int]:
    out = _ip("netns", "pids", name, check=False).stdout
    return [int(p) for p in out.split() if p.isdigit()]


def _delete(name: str) -> None:
    _kill_all(_pids_in(name))
    _ip("netns", "delete", name, check=False)


def clean_stale() -> list[str]:
    """Delete ``parley-<pid>-<n>`` namespaces (and their processes) whose creator is gone."""
    removed = []
    for line in _ip("netns", "list", check=False).stdout.splitlines():
        name = line.split()[0] if line.strip() else ""
        m = re.fullmatch(rf"{PREFIX}(\d+)-\d+", name)
        if m and not _pid_alive(int(m.group(1))):
            _delete(name)
            removed.append(name)
    return removed


def clean_env(env: Mapping[str, str] | None = None, **extra: str) -> dict[str, str]:
    """``os.environ`` (or ``env``) without proxy variables, plus ``extra``."""
    base = dict(os.environ if env is None else env)
    for var in _PROXY_VARS:
        base.pop(var, None)
    base["NO_PROXY"] = base["no_proxy"] = "*"
    base.update(extra)
    return base


class Namespace:
    """One network namespace with the veth layout above. Create with ``Namespace.create()``."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.host_a = HOST_A
        self.host_b = HOST_B
        self._closed = False

    @classmethod
    def create(cls) -> Namespace:
        """Make a fresh namespace (``parley-<pid>-<n>``); stale ones of dead pids are removed."""
        reason = unavailable_reason()
        if reason:
            raise NetnsUnavailable(reason)
        clean_stale()
        name = f"{PREFIX}{os.getpid()}-{next(_counter)}"
        _delete(name)  # a leftover of an earlier process that had the same pid
        ns = cls(name)
        steps = [
            ("netns", "add", name),
            ("-n", name, "link", "set", "lo", "up"),
            ("-n", name, "addr", "add", "127.0.0.2/8", "dev", "lo"),
            ("-n", name, "link", "add", "v0", "type", "veth", "peer", "name", "v1"),
            ("-n", name, "addr", "add", f"{HOST_A}/24", "dev", "v0"),
            ("-n", name, "addr", "add", f"{HOST_B}/24", "dev", "v1"),
            ("-n", name, "link", "set", "v0", "up"),
            ("-n", name, "link", "set", "v1", "up"),
        ]
        for step in steps:
            done = _ip(*step, check=False)
            if done.returncode != 0:
                ns.close()
                raise NetnsUnavailable(f"`ip {' '.join(step)}` failed: {done.stderr.strip()}")
        return ns

    # -- subprocesses ---------------------------------------------------------------------------

    def argv(self, argv: Sequence[str | os.PathLike[str]]) -> list[str]:
        """``argv`` prefixed so that it runs inside (``ip netns exec`` execs it: same pid)."""
        return ["ip", "netns", "exec", self.name, *map(str, argv)]

    def popen(
        self,
        argv: Sequence[str | os.PathLike[str]],
        env: Mapping[str, str] | None = None,
        **kw: Any,
    ) -> subprocess.Popen[Any]:
        """``subprocess.Popen`` inside; ``env`` defaults to ours (without proxy variables)."""
        return subprocess.Popen(self.argv(argv), env=clean_env(env), **kw)

    def run(
        self,
        argv: Sequence[str | os.PathLike[str]],
        env: Mapping[str, str] | None = None,
        **kw: Any,
    ) -> subprocess.CompletedProcess[Any]:
        """``subprocess.run`` inside (pass ``timeout=``, ``capture_output=``, ``check=`` ...)."""
        return subprocess.run(self.argv(argv), env=clean_env(env), **kw)

    def pids(self) -> list[int]:
        """Processes currently running inside."""
        return _pids_in(self.name)

    # -- this process, one thread ---------------------------------------------------------------

    def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run ``fn(*args, **kwargs)`` in a new thread that joined the namespace; return its result.

        A network namespace is per thread: the thread's sockets live inside, the rest of the
        process stays where it was. Blocking: from async code use ``asyncio.to_thread(ns.call,
        ...)``. Do not create an event loop or a long-lived client in ``fn`` and use it elsewhere.
        """
        box: dict[str, Any] = {}

        def _target() -> None:
            try:
                self._enter()
                box["value"] = fn(*args, **kwargs)
            except BaseException as exc:  # handed back to the caller's thread
                box["error"] = exc

        thread = threading.Thread(target=_target, name=f"netns-{self.name}", daemon=True)
        thread.start()
        thread.join()
        if "error" in box:
            raise box["error"]
        return box["value"]  # type: ignore[no-any-return]

    def _enter(self) -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        fd = os.open(NETNS_DIR / self.name, os.O_RDONLY)
        try:
            if libc.setns(fd, _CLONE_NEWNET) != 0:
                err = ctypes.get_errno()
                raise OSError(err, f"setns({self.name}): {os.strerror(err)}")
        finally:
            os.close(fd)

    def http(
        self,
        method: str,
        url: str,
        *,
        json_body: Any = None,
        headers: Mapping[str, str] | None = None,
        timeout: float = 10.0,
    ) -> tuple[int, Any]:
        """One HTTP request from inside: ``(status, body)``; body is parsed JSON when it is JSON,
        else text. HTTP errors are returned, not raised. Example::

            status, body = ns.http("POST", f"{api}/v1/sessions/web", json_body={"agent_id": aid},
                                   headers={"Authorization": f"Bearer {key}"})
        """
        return self.call(_http, method, url, json_body, dict(headers or {}), timeout)

    def wait_http(
        self, url: str, timeout: float = 20.0, alive: Callable[[], bool] | None = None
    ) -> None:
        """Wait until ``GET url`` answers below 500 from inside (``alive()`` false → give up)."""
        self.call(_wait, lambda: _http("GET", url, None, {}, 1.0)[0] < 500, url, timeout, alive)

    def wait_tcp(
        self, host: str, port: int, timeout: float = 20.0, alive: Callable[[], bool] | None = None
    ) -> None:
        """Wait until ``host:port`` accepts TCP connections from inside."""
        self.call(_wait, lambda: _tcp_open(host, port), f"{host}:{port}", timeout, alive)

    # -- teardown -------------------------------------------------------------------------------

    def close(self) -> None:
        """Kill every process inside (SIGTERM, then SIGKILL), delete the namespace. Idempotent."""
        if not self._closed:
            self._closed = True
            _delete(self.name)

    def __enter__(self) -> Namespace:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Namespace({self.name!r})"


def _http(
    method: str, url: str, body: Any, headers: dict[str, str], timeout: float
) -> tuple[int, Any]:
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        headers = {"Content-Type": "application/json", **headers}
    req = urllib.request.Request(url, data=data, method=method, headers=headers)
    # No proxies: the namespace has no way out anyway.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(req, timeout=timeout) as resp:
            status, raw, ctype = resp.status, resp.read(), resp.headers.get("Content-Type", "")
    except urllib.error.HTTPError as err:
        status, raw, ctype = err.code, err.read(), err.headers.get("Content-Type", "")
    text = raw.decode(errors="replace")
    if "json" in ctype and text:
        return status, json.loads(text)
    return status, text


def _tcp_open(host: str, port: int) -> bool:
    import socket

    with socket.socket() as sock:
        sock.settimeout(1.0)
        return sock.connect_ex((host, port)) == 0


def _wait(
    ready: Callable[[], bool], what: str, timeout: float, alive: Callable[[], bool] | None
) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if ready():
                return
        except Exception:  # refused, reset, half-started server: not ready yet
            pass
        if alive is not None and not alive():
            raise RuntimeError(f"gave up waiting for {what}: the process exited")
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not ready after {timeout:.0f} s")
        time.sleep(0.05)
