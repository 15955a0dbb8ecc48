"""API latency and throughput: ``GET /v1/agents/{id}`` (API-key auth + one row read) against
``GET /healthz`` (no auth, no database) as the baseline, measured in the same run.

The API runs with uvicorn in a subprocess on 127.0.0.1 (one worker, default pool), on an
embedded Postgres in a temporary folder, with one organization, an API key and an agent. The
load comes from a second process (this file with ``load``): ``--concurrency`` asyncio workers
on one httpx client, each sending its next request as soon as the previous answer arrives,
for ``--seconds`` after a short warm-up. Everything is removed at the end.

    .venv/bin/python bench/api.py [--seconds 20] [--concurrency 16] [--json out.json]

On a 2-core machine the load generator and the server share the CPU: the numbers are a
floor for the server alone, useful to compare runs on the same machine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
# Run as a script, this file's folder comes first on sys.path, where "api" would be this very
# file instead of the package: put the repository there instead.
if sys.path and Path(sys.path[0]).resolve() == ROOT / "bench":
    sys.path[0] = str(ROOT)
WARMUP_S = 2.0


# --------------------------------------------------------------------------------------------
# Load generator (runs in its own process)


async def drive(url: str, token: str, seconds: float, concurrency: int) -> dict[str, Any]:
    latencies: list[float] = []
    statuses: Counter[int] = Counter()
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    # One client (one keep-alive connection) per worker: a shared httpx pool serializes on
    # its lock and would measure itself rather than the server.
    clients = [httpx.AsyncClient(headers=headers, timeout=30) for _ in range(concurrency)]

    async def worker(client: httpx.AsyncClient, until: float, record: bool) -> None:
        while time.perf_counter() < until:
            t0 = time.perf_counter()
            r = await client.get(url)
            if record:
                latencies.append(time.perf_counter() - t0)
                statuses[r.status_code] += 1

    try:
        warm_until = time.perf_counter() + WARMUP_S
        await asyncio.gather(*(worker(c, warm_until, False) for c in clients))
        started = time.perf_counter()
        until = started + seconds
        await asyncio.gather(*(worker(c, until, True) for c in clients))
        elapsed = time.perf_counter() - started
    finally:
        for c in clients:
            await c.aclose()
    q = statistics.quantiles(latencies, n=100, method="inclusive")
    return {
        "requests": len(latencies),
        "seconds": round(elapsed, 2),
        "rps": round(len(latencies) / elapsed, 1),
        "p50_ms": round(q[49] * 1000, 2),
        "p90_ms": round(q[89] * 1000, 2),
        "p99_ms": round(q[98] * 1000, 2),
        "max_ms": round(max(latencies) * 1000, 2),
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
    }


# --------------------------------------------------------------------------------------------
# Orchestration


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def prepare(pgdata: Path) -> tuple[str, str]:
    """Start the embedded Postgres, migrate, and make an organization with an API key
    (what ``parley keys create --org bench`` does)."""
    from api.cli import create_key
    from parley.db import database_url
    from parley.db.settings import DatabaseSettings

    db = DatabaseSettings(url=None, embedded_dir=pgdata)
    token, _, _ = await create_key("bench", "bench", db)
    return await database_url(db_settings=db), token


def wait_ready(base: str, proc: subprocess.Popen[bytes], timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the API exited early with code {proc.returncode}")
        try:
            if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"the API was not ready after {timeout:.0f} s")


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def _ms(text: str) -> float:
    match = re.fullmatch(r"([0-9.]+)(us|ms|s)", text)
    if match is None:
        raise ValueError(f"unexpected wrk latency {text!r}")
    return round(float(match[1]) * _UNITS[match[2]], 2)


def run_wrk(url: str, token: str, seconds: float, concurrency: int) -> dict[str, Any]:
    """The same load with wrk (C, one thread): far less client overhead than Python."""
    cmd = ["wrk", "-t1", f"-c{concurrency}", "--latency"]
    if token:
        cmd += ["-H", f"Authorization: Bearer {token}"]
    subprocess.run([*cmd, f"-d{WARMUP_S:.0f}s", url], capture_output=True, check=True)
    out = subprocess.run(
        [*cmd, f"-d{seconds:.0f}s", url], capture_output=True, text=True, check=True
    ).stdout
    pct = dict(re.findall(r"^\s+(50|75|90|99)%\s+(\S+)$", out, re.M))
    total, elapsed = re.search(r"(\d+) requests in ([0-9.]+)s", out).groups()  # type: ignore[union-attr]
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: (.*)$", out, re.M)
    return {
        "requests": int(total),
        "seconds": float(elapsed),
        "rps": float(re.search(r"Requests/sec:\s+([0-9.]+)", out)[1]),  # type: ignore[index]
        "p50_ms": _ms(pct["50"]),
        "p90_ms": _ms(pct["90"]),
        "p99_ms": _ms(pct["99"]),
        "statuses": {"non-2xx": int(bad[1]) if bad else 0}
        | ({"socket errors": errors[1]} if errors else {}),
    }


def run_load(url: str, token: str, seconds: float, concurrency: int) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "load", url, "--token", token]
    cmd += ["--seconds", str(seconds), "--concurrency", str(concurrency)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 120, check=True)
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def bench(seconds: float, concurrency: int, tools: list[str]) -> dict[str, Any]:
    from parley.config import load_agent
    from parley.db import stop_embedded

    tmp = Path(tempfile.mkdtemp(prefix="parley-bench-"))
    pgdata = tmp / "pg"
    proc: subprocess.Popen[bytes] | None = None
    try:
        db_url, token = asyncio.run(prepare(pgdata))
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PARLEY_", "DATABASE"))}
        env |= {
            "DATABASE_URL": db_url,
            "PARLEY_DATA_DIR": str(tmp / "data"),
            "PARLEY_LOG_LEVEL": "WARNING",
            # The point is the server's cost, not the limiter's refusals.
            "PARLEY_API_RATE_PER_SEC": "1000000",
            "PARLEY_API_RATE_BURST": "1000000",
        }
        server_cmd = [sys.executable, "-m", "uvicorn", "api.app:create_app", "--factory"]
        server_cmd += ["--host", "127.0.0.1", "--port", str(port), "--no-access-log"]
        server_cmd += ["--log-level", "warning"]
        proc = subprocess.Popen(server_cmd, cwd=ROOT, env=env)
        wait_ready(base, proc)
        agent = load_agent("dental").model_dump(mode="json")
        made = httpx.post(
            f"{base}/v1/agents", json=agent, headers={"Authorization": f"Bearer {token}"}
        )
        made.raise_for_status()
        agent_path = f"/v1/agents/{made.json()['id']}"
        result: dict[str, Any] = {"concurrency": concurrency, "cpus": os.cpu_count()}
        for tool in tools:
            drive_with = run_wrk if tool == "wrk" else run_load
            for name, path, tok in (
                ("GET /healthz (baseline, no DB)", "/healthz", ""),
                ("GET /v1/agents/{id}", agent_path, token),
            ):
                result[f"{tool}: {name}"] = drive_with(base + path, tok, seconds, concurrency)
        return result
    finally:
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
        stop_embedded(pgdata)
        shutil.rmtree(tmp, ignore_errors=True)


def report(result: dict[str, Any]) -> None:
    print(f"\nconcurrency {result['concurrency']}, {result['cpus']} CPUs, 1 uvicorn worker")
    cols = f"{'req/s':>9}{'p50 ms':>9}{'p90 ms':>9}{'p99 ms':>9}"
    print(f"{'load generator: endpoint':<40}{cols}  statuses")
    for name, r in result.items():
        if isinstance(r, dict):
            print(
                f"{name:<40}{r['rps']:>9}{r['p50_ms']:>9}{r['p90_ms']:>9}{r['p99_ms']:>9}"
                f"  {r['statuses']}"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="mode")
    load = sub.add_parser("load", help="(internal) the load generator process")
    load.add_argument("url")
    load.add_argument("--token", default="")
    for p in (parser, load):
        p.add_argument("--seconds", type=float, default=20.0)
        p.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--json", type=Path, help="Also write the results here.")
    parser.add_argument(
        "--tool",
        choices=["auto", "httpx", "wrk", "both"],
        default="auto",
        help="Load generator: this file's httpx one, wrk, or both (auto: both if wrk is "
        "installed, e.g. apt-get install wrk).",
    )
    args = parser.parse_args()
    if args.mode == "load":
        out = asyncio.run(drive(args.url, args.token, args.seconds, args.concurrency))
        print(json.dumps(out))
        return
    if not 1 <= args.seconds <= 600 or not 1 <= args.concurrency <= 256:
        parser.error("--seconds must be 1-600 and --concurrency 1-256")
    have_wrk = shutil.which("wrk") is not None
    if args.tool == "auto":
        tools = ["httpx", "wrk"] if have_wrk else ["httpx"]
    else:
        tools = ["httpx", "wrk"] if args.tool == "both" else [args.tool]
    if "wrk" in tools and not have_wrk:
        parser.error("wrk is not installed (apt-get install wrk)")
    result = bench(args.seconds, args.concurrency, tools)
    report(result)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
