"""Concurrent sessions per core: the Parley LiveKit worker against a plain LiveKit Agents worker.

N simulated callers (``bench/sessions_callers.py``) each join their own room on a local
``livekit-server`` and talk to the agent dispatched there, in a loop: a spoken question (Piper
WAV, real-time 20 ms frames), the agent's reply, a 1-2 s pause. Both workers reach the same
simulated providers (``bench/sessions_fakes.py``: STT 150 ms after end of speech, LLM first token
250 ms, TTS first audio 120 ms, then audio at 2x real time) through their own real client code,
with Silero VAD and the same turn-taking. N grows in a ladder; at each step the baseline and
Parley run one after the other (alternating which goes first) on the same server.

Per step, over a measurement window that starts once every session is up:

* worker CPU: user + system seconds of the worker's whole process tree (main process, forkserver,
  job processes) from /proc, divided by wall time = cores used; sessions per core = N / cores;
* livekit-server, the load generator, the simulated providers and Postgres are read the same
  way and reported separately; none of them counts as worker CPU;
* voice-to-voice p50/p90 at the caller, underruns (silent holes inside a reply), late frames,
  and replies that never came.

A step passes when every session answered, no reply had an underrun and the p50 voice-to-voice
is within ``--v2v-bound-ms``. Every process runs inside a network namespace the bench creates
(``tests/netns.py``).

Run: ``.venv/bin/python bench/sessions.py`` (~10 min); ``--quick`` for a smoke run (~2 min,
exit status 1 if a session never answered).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import signal
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.sessions_report import print_report, step_line, summarize  # noqa: E402
from bench.sessions_sides import (  # noqa: E402
    Baseline,
    Parley,
    Side,
    delete_rooms,
    start_postgres,
    stop_postgres,
)
from bench.sessions_stack import (  # noqa: E402
    PYTHON,
    Stack,
    cpu_delta,
    machine_busy_s,
    tree_cpu,
    tree_rss_mb,
    tree_size,
)

FAKES_PORT = 9300
CALLERS_PER_PROCESS = 8  # each livekit client process filters every FFI event per stream


async def run_step(
    side: Side,
    n: int,
    args: argparse.Namespace,
    stack: Stack,
    wav: Path,
    others: dict[str, int],
    idle_workers: list[int],
) -> dict[str, Any]:
    assert side.worker is not None
    tag = f"n{n}-{uuid.uuid4().hex[:6]}"
    specs = await side.rooms(n, tag)
    window_file = stack.workdir / f"window-{side.name}-{tag}.json"
    give_up_at = time.time() + args.max_warmup + args.window + 30
    lk = stack.livekit
    assert lk is not None
    callers = []
    for g in range(math.ceil(n / CALLERS_PER_PROCESS)):
        part = specs[g * CALLERS_PER_PROCESS : (g + 1) * CALLERS_PER_PROCESS]
        spec_file = stack.workdir / f"spec-{side.name}-{tag}-{g}.json"
        spec_file.write_text(json.dumps(part))
        argv = [PYTHON, "bench/sessions_callers.py", "--spec", str(spec_file)]
        argv += ["--out", str(spec_file.with_suffix(".out.json")), "--wav", str(wav)]
        argv += ["--url", lk.url, "--http-url", lk.http_url]
        argv += ["--window-file", str(window_file), "--give-up-at", str(give_up_at)]
        child = stack.spawn(f"callers-{side.name}-{tag}-{g}", argv, lk.env())
        callers.append((child, spec_file))

    def snapshot() -> dict[str, dict[int, float]]:
        snap = {"worker": tree_cpu(side.worker.pid if side.worker else 0)}
        snap.update({name: tree_cpu(pid) for name, pid in others.items()})
        calls: dict[int, float] = {}
        for child, _ in callers:
            calls.update(tree_cpu(child.pid))
        snap["callers"] = calls
        idle: dict[int, float] = {}
        for pid in idle_workers:
            idle.update(tree_cpu(pid))
        snap["idle workers"] = idle
        own = psutil.Process().cpu_times()  # this process alone: its children are counted above
        snap["bench"] = {os.getpid(): own.user + own.system}
        snap["machine"] = {0: machine_busy_s()}
        return snap

    # The window starts once every session has answered once (or failed), so job start-up
    # (process spawn, model loading) never falls inside it.
    deadline = time.monotonic() + args.max_warmup
    while time.monotonic() < deadline and not all("READY" in c.log() for c, _ in callers):  # noqa: ASYNC110
        await asyncio.sleep(0.5)
    window_start = time.time() + 2.0
    window_end = window_start + args.window
    window_file.write_text(json.dumps({"start": window_start, "end": window_end}))
    await asyncio.sleep(max(0.0, window_start - time.time()))
    t0, before = time.monotonic(), snapshot()
    profiler = _profile(side.worker.pid, args, f"{side.name}-n{n}") if args.profile else None
    await asyncio.sleep(max(0.0, window_end - time.time()))
    if profiler is not None:
        await asyncio.to_thread(profiler.wait, 60)
    t1, after = time.monotonic(), snapshot()
    rss = tree_rss_mb(side.worker.pid)
    wall = t1 - t0
    cpu = {name: cpu_delta(before[name], after[name]) / wall for name in before}
    # Whatever else ran on the machine meanwhile (other test suites): shown so a disturbed step
    # can be recognised.
    cpu["foreign"] = cpu["machine"] - sum(v for k, v in cpu.items() if k != "machine")
    results: list[dict[str, Any]] = []
    for child, spec_file in callers:
        await asyncio.to_thread(child.proc.wait, 90)
        out = spec_file.with_suffix(".out.json")
        if out.exists():
            results += json.loads(out.read_text())
        else:
            print(f"  ! {child.name} wrote no result:\n{child.log_tail(30)}", flush=True)
    await asyncio.to_thread(delete_rooms, stack, [s["room"] for s in specs])
    await settle(side)
    step = summarize(side.name, n, wall, cpu, rss, results, args.v2v_bound_ms)
    if side.worker.proc.poll() is not None:
        step["passed"], step["worker_died"] = False, True
        print(f"  ! {side.name} worker died:\n{side.worker.log_tail(8)}", flush=True)
    if isinstance(side, Parley):
        step["pipeline_p50_ms"] = await side.pipeline_latencies([s["room"] for s in specs])
    print(step_line(step), flush=True)
    return step


async def settle(side: Side, limit_s: float = 30.0) -> None:
    """Wait for the worker's job processes to go away after the rooms were deleted."""
    assert side.worker is not None
    idle = side.extra.get("idle_tree", 0)
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline and tree_size(side.worker.pid) > idle:  # noqa: ASYNC110
        await asyncio.sleep(0.5)
    await asyncio.sleep(2.0)


async def bench(args: argparse.Namespace) -> list[dict[str, Any]]:
    from agents.file.demo import spoken
    from bench.sessions_fakes import QUESTION
    from parley.settings import Settings

    stack = Stack()
    steps: list[dict[str, Any]] = []
    pg_pid: int | None = None
    others_db: dict[str, str] = {}
    try:
        # Piper's WAV of the question, cached under the data dir (~/.parley/speech).
        wav = await asyncio.to_thread(spoken, QUESTION, Settings())
        lk = stack.start()
        argv = [PYTHON, "bench/sessions_fakes.py", "--port", str(FAKES_PORT)]
        fakes = stack.spawn("providers", argv, ready_log="READY")
        fakes_url = f"http://127.0.0.1:{FAKES_PORT}"
        others = {"livekit-server": lk.server.pid, "redis": lk.redis.pid, "providers": fakes.pid}
        sides: list[Side] = []
        for name in args.sides:
            threads = name.endswith("-threads")
            if name.startswith("baseline"):
                sides.append(Baseline(name, stack, fakes_url, extra={"threads": threads}))
                continue
            if "db_url" not in others_db:
                others_db["db_url"], pg_pid = await start_postgres(stack.workdir)
                if pg_pid:
                    others["postgres"] = pg_pid
            worker_args = args.parley_args.split() + (["--threads"] if threads else [])
            parley = Parley(
                name,
                stack,
                fakes_url,
                extra={"db_url": others_db["db_url"], "worker_args": worker_args},
            )
            await parley.prepare_db()
            sides.append(parley)
        for side in sides:
            side.start()
            await asyncio.sleep(3.0)  # idle processes warm up
            side.extra["idle_tree"] = tree_size(side.worker.pid) if side.worker else 0
        print(
            f"machine: 2 cores expected, {os.cpu_count()} seen; "
            f"ladder {args.ladder}; window {args.window:.0f} s",
            flush=True,
        )
        for i, n in enumerate(args.ladder):
            order = sides if i % 2 == 0 else list(reversed(sides))
            for side in order:
                if side.worker is None or side.worker.proc.poll() is not None:
                    side.start()  # died in an earlier step: the next step gets a fresh one
                idle = [x.worker.pid for x in sides if x is not side and x.worker]
                steps.append(await run_step(side, n, args, stack, wav, others, idle))
    finally:
        stack.stop_all()
        if pg_pid:
            stop_postgres(stack.workdir)
    return steps


def _profile(worker_pid: int, args: argparse.Namespace, name: str) -> Any:
    """py-spy on the busiest process of the worker's tree (the job process) for the window."""
    import shutil
    import subprocess

    tree = [psutil.Process(worker_pid), *psutil.Process(worker_pid).children(recursive=True)]
    first = {p.pid: sum(p.cpu_times()[:2]) for p in tree}
    time.sleep(1.0)  # the busiest now, not the one that loaded the models
    busiest = max(tree, key=lambda p: sum(p.cpu_times()[:2]) - first[p.pid])
    args.profile.mkdir(parents=True, exist_ok=True)
    out = args.profile / f"{name}.txt"
    spy = shutil.which("py-spy") or str(Path(PYTHON).parent / "py-spy")
    argv = [spy, "record", "--pid", str(busiest.pid), "--duration", str(int(args.window) - 2)]
    argv += ["--format", "raw", "--output", str(out), "--rate", "200", "--nonblocking"]
    print(f"  profiling pid {busiest.pid} -> {out}", flush=True)
    threads_before = _thread_cpu(busiest.pid)
    spy = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    class Profiler:
        def wait(self, timeout: float) -> None:
            spy.wait(timeout)
            after = _thread_cpu(busiest.pid)
            per_name: dict[str, float] = {}
            for tid, (name, cpu) in after.items():
                used = cpu - threads_before.get(tid, (name, 0.0))[1]
                per_name[name] = per_name.get(name, 0.0) + used / (args.window - 2)
            top = sorted(per_name.items(), key=lambda kv: -kv[1])
            out.with_suffix(".threads.json").write_text(json.dumps(top, indent=1))
            print("  threads (cores):", ", ".join(f"{k} {v:.3f}" for k, v in top[:12]), flush=True)

    return Profiler()


def _thread_cpu(pid: int) -> dict[int, tuple[str, float]]:
    """CPU seconds of each thread of ``pid`` (from /proc), by thread id, with its name."""
    ticks = os.sysconf("SC_CLK_TCK")
    found: dict[int, tuple[str, float]] = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            stat = (task / "stat").read_text()
        except OSError:
            continue
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2 :].split()
        found[int(task.name)] = (name, (int(fields[11]) + int(fields[12])) / ticks)
    return found


def parse() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    ap.add_argument("--ladder", default="1,2,4,6", help="session counts, comma separated")
    ap.add_argument("--window", type=float, default=30.0, help="measurement seconds per step")
    ap.add_argument("--max-warmup", type=float, default=90.0, help="seconds to wait for answers")
    ap.add_argument(
        "--sides",
        default="baseline,parley",
        help="any of baseline, parley, baseline-threads, parley-threads (jobs as threads)",
    )
    ap.add_argument(
        "--parley-args",
        default="--max-jobs 64 --idle-processes 2",
        help="options for `parley worker` (the -threads sides add --threads)",
    )
    ap.add_argument("--v2v-bound-ms", type=float, default=2000.0)
    ap.add_argument("--json", type=Path, default=None, help="write every step here")
    ap.add_argument("--profile", type=Path, default=None, help="py-spy the job process here")
    ap.add_argument("--quick", action="store_true", help="smoke run: N = 2, 10 s windows")
    args = ap.parse_args()
    if args.quick:
        args.ladder, args.window = "2", 10.0
    args.ladder = [int(x) for x in str(args.ladder).split(",") if x]
    args.sides = [s.strip() for s in str(args.sides).split(",") if s.strip()]
    return args


def main() -> int:
    args = parse()
    # SIGTERM stops the bench like Ctrl-C: the finally blocks stop every process it started.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    steps = asyncio.run(bench(args))
    print_report(steps, args.v2v_bound_ms)
    if args.json:
        args.json.write_text(json.dumps(steps, indent=1))
    failed = [s for s in steps if s["sessions_ok"] < s["n"]]
    return 1 if args.quick and failed else 0


if __name__ == "__main__":
    sys.exit(main())
