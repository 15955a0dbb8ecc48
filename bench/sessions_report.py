"""Per-step summaries and the final table of ``bench/sessions.py``."""

from __future__ import annotations

from typing import Any

import numpy as np

from bench.sessions_fakes import LLM_FIRST_TOKEN_S, STT_S, TTS_FIRST_AUDIO_S

# No reply can start sooner after the end of speech than the VAD's 0.4 s silence plus the
# simulated providers' delays; one that does answered an earlier question (a stale reply).
FLOOR_MS = (0.4 + STT_S + LLM_FIRST_TOKEN_S + TTS_FIRST_AUDIO_S) * 1000


def pct(values: list[float], q: float) -> int | None:
    return round(float(np.percentile(values, q))) if values else None


def summarize(
    side: str,
    n: int,
    wall: float,
    cpu: dict[str, float],
    rss_mb: float,
    callers: list[dict[str, Any]],
    v2v_bound_ms: float,
) -> dict[str, Any]:
    """One ladder step. ``cpu`` holds cores used (CPU seconds / wall seconds) per component."""
    turns = [t for c in callers for t in c["turns"]]
    answered = [t for t in turns if t["v2v_ms"] is not None]
    stale = [t for t in answered if t["v2v_ms"] < FLOOR_MS]
    v2v = [float(t["v2v_ms"]) for t in answered if t["v2v_ms"] >= FLOOR_MS]
    ok = [c for c in callers if c["connected"] and c["answered_before_window"] and c["turns"]]
    errors = sorted({c["error"] for c in callers if c["error"]})
    step: dict[str, Any] = {
        "side": side,
        "n": n,
        "wall_s": round(wall, 2),
        "cores": {k: round(v, 4) for k, v in cpu.items()},
        "worker_cores": round(cpu["worker"], 4),
        "cpu_ms_per_session_s": round(cpu["worker"] / n * 1000, 1),
        "sessions_per_core": round(n / cpu["worker"], 1) if cpu["worker"] > 0 else None,
        "worker_rss_mb": round(rss_mb),
        "sessions_ok": len(ok),
        "turns": len(turns),
        "no_reply": len(turns) - len(answered),
        "stale_replies": len(stale),
        "v2v_p50_ms": pct(v2v, 50),
        "v2v_p90_ms": pct(v2v, 90),
        "underruns": sum(t["underruns"] for t in answered),
        "underrun_ms": round(sum(t["underrun_ms"] for t in answered)),
        "replies_with_underrun": sum(1 for t in answered if t["underruns"]),
        "late_frames": sum(t["late_frames"] for t in answered),
        "max_gap_ms": round(max((t["max_gap_ms"] for t in answered), default=0.0)),
        "reply_ms_p50": pct([t["reply_ms"] for t in answered], 50),
        "concealment_events": sum(c["concealment"].get("events", 0) for c in callers),
        "concealed_ms": round(sum(c["concealment"].get("concealed_ms", 0) for c in callers)),
        "errors": errors,
    }
    step["passed"] = bool(
        step["sessions_ok"] == n
        and step["no_reply"] == 0
        and step["stale_replies"] == 0
        and step["underruns"] == 0
        and step["v2v_p50_ms"] is not None
        and step["v2v_p50_ms"] <= v2v_bound_ms
    )
    return step


def server_cores(cores: dict[str, float]) -> float:
    """livekit-server and its Redis."""
    return cores.get("livekit-server", 0.0) + cores.get("redis", 0.0)


def step_line(s: dict[str, Any]) -> str:
    c = s["cores"]
    return (
        f"{s['side']:>8} N={s['n']:<3} worker {s['worker_cores']:.3f} cores "
        f"({s['cpu_ms_per_session_s']:.0f} ms/s per session, {s['sessions_per_core']} per core) | "
        f"server {server_cores(c):.3f} callers {c.get('callers', 0):.3f} "
        f"providers {c.get('providers', 0):.3f} pg {c.get('postgres', 0):.3f} "
        f"foreign {c.get('foreign', 0):.2f} | "
        f"ok {s['sessions_ok']}/{s['n']} turns {s['turns']} no-reply {s['no_reply']} "
        f"stale {s['stale_replies']} | "
        f"v2v p50 {s['v2v_p50_ms']} p90 {s['v2v_p90_ms']} ms | underruns {s['underruns']} "
        f"({s['underrun_ms']} ms) late {s['late_frames']} conceal {s['concealment_events']} | "
        f"{'PASS' if s['passed'] else 'fail'}"
        + (f" | errors: {s['errors']}" if s["errors"] else "")
        + (f" | pipeline p50 {s['pipeline_p50_ms']}" if s.get("pipeline_p50_ms") else "")
    )


def best(steps: list[dict[str, Any]], side: str) -> dict[str, Any] | None:
    """The largest N that passed (no underruns, every session answered, v2v within bound)."""
    passed = [s for s in steps if s["side"] == side and s["passed"]]
    return max(passed, key=lambda s: s["n"]) if passed else None


def print_report(steps: list[dict[str, Any]], v2v_bound_ms: float) -> None:
    print(
        "\n| side | N | worker cores | CPU ms/s per session | sessions/core | server cores "
        "| callers cores | other load | v2v p50 / p90 | underruns | late frames | no reply | pass |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for s in sorted(steps, key=lambda s: (s["n"], s["side"])):
        c = s["cores"]
        print(
            f"| {s['side']} | {s['n']} | {s['worker_cores']:.3f} | {s['cpu_ms_per_session_s']:.0f}"
            f" | {s['sessions_per_core']} | {server_cores(c):.3f}"
            f" | {c.get('callers', 0):.3f} | {c.get('foreign', 0):.2f}"
            f" | {s['v2v_p50_ms']} / {s['v2v_p90_ms']} ms"
            f" | {s['underruns']} | {s['late_frames']} | {s['no_reply']}"
            f" | {'yes' if s['passed'] else 'no'} |"
        )
    b, p = best(steps, "baseline"), best(steps, "parley")
    print(f"\npass = every session answered, no underrun, v2v p50 <= {v2v_bound_ms:.0f} ms")
    for name, s in (("baseline", b), ("parley", p)):
        if s:
            print(f"{name}: largest passing N = {s['n']}, {s['sessions_per_core']} sessions/core")
        else:
            print(f"{name}: no passing step")
    same_n = [
        (x, y)
        for x in steps
        for y in steps
        if x["side"] == "parley" and y["side"] == "baseline" and x["n"] == y["n"]
    ]
    for x, y in sorted(same_n, key=lambda t: t[0]["n"]):
        if x["sessions_per_core"] and y["sessions_per_core"]:
            ratio = x["sessions_per_core"] / y["sessions_per_core"]
            print(f"N={x['n']}: parley/baseline sessions per core = {ratio:.2f}x")
    if b and p and b["sessions_per_core"]:
        ratio = p["sessions_per_core"] / b["sessions_per_core"]
        print(f"at each side's largest passing N: {ratio:.2f}x")
