"""Greeting latency in a LiveKit room: from the caller joining to the agent's first audio.

    .venv/bin/python bench/greeting.py [--rounds 8]

Everything runs inside a private network namespace (WebRTC ignores loopback): livekit-server +
Redis, the API (``parley serve``), the worker (``parley worker``, prewarmed job processes), an
OpenAI-compatible LLM stand-in; STT and TTS are the local Whisper and Piper. Each round is a
real web session: ``POST /v1/sessions/web`` (which returns once the agent is in its room), the
caller joins, and its clock runs from ``connect()`` returning to the first voiced agent frame.
The agent's side of it comes from the worker's log: from the caller's join time as the server
records it (``joined_at``, ms) to the greeting's first audio frame handed to LiveKit.

Floor, in the same run: a participant already in a room streams a tone and a newcomer times
its first voiced frame the same way (``bench/greeting_floor.py``): what LiveKit itself needs.
And the floor for the greeting's last leg: an idle publisher starts speaking just after a
newcomer joined, timed from its first write to the newcomer's first voiced frame.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.livekit.parley_stack import (  # noqa: E402
    QUESTION,
    api_url,
    clinic_agent,
    parley_env,
    seed,
    start_api,
    start_fake_llm,
    start_worker,
)
from tests.livekit.stack import (  # noqa: E402
    NsProcess,
    livekit_server_binary,
    run_in_ns,
    start_livekit_stack,
    start_process,
)
from tests.netns import Namespace  # noqa: E402

LLM_PORT = 8090


def _median(xs: list[float]) -> float:
    return round(statistics.median(xs), 1) if xs else float("nan")


async def _database(workdir: Path) -> str:
    from parley.db.embedded import ensure_embedded
    from parley.db.migrate import migrate

    url = await ensure_embedded(workdir / "pg")
    await migrate(url)
    return url


def _question_wav(workdir: Path) -> Path:
    from agents.file.demo import speak_to_wav
    from parley.settings import Settings

    return speak_to_wav(QUESTION, workdir / "question.wav", Settings(data_dir=workdir))


def main(rounds: int) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="bench-greeting-"))
    binary = livekit_server_binary()
    if binary is None:
        raise SystemExit("no livekit-server binary (fix: run scripts/setup.sh)")
    ns = Namespace.create()
    procs: list[NsProcess] = []

    def spawn(argv: list[str], *, name: str, **kw: Any) -> NsProcess:
        proc = start_process(ns, argv, name=name, log_dir=workdir, **kw)
        procs.append(proc)
        return proc

    try:
        stack = start_livekit_stack(ns, workdir / "livekit", binary=binary)
        db_url = asyncio.run(_database(workdir))
        seeded = asyncio.run(seed(db_url, clinic_agent(LLM_PORT)))
        env = parley_env(db_url, workdir, stack, agent_name="bench-greeting")
        start_fake_llm(spawn, LLM_PORT)
        api = start_api(spawn, env)
        worker = start_worker(spawn, env)
        wav = _question_wav(workdir)

        floors = run_in_ns(ns, ROOT / "bench/greeting_floor.py", ["--rounds", str(rounds)],
                           env=stack.env(), timeout=180)  # fmt: skip
        floor, start_floor = floors["floor_ms"], floors["start_ms"]
        greetings: list[float] = []
        v2v: list[float] = []
        accelerated: list[float] = []
        for n in range(rounds):
            # Each call uses up its job process; wait for the pool's next prewarmed one.
            while worker.log().count("job process ready") < n + 1:
                time.sleep(0.2)
            args = ["--api", api_url(), "--key", seeded.key, "--agent-id", str(seeded.agent_id),
                    "--wav", str(wav), "--out", str(workdir / f"heard-{n}.wav"),
                    "--expect-greeting", "--hang-up"]  # fmt: skip
            out = run_in_ns(ns, "tests.livekit.clients.room_caller", args, timeout=120)
            greetings.append(float(out["greeting_ms"]))
            if out.get("voice_to_voice_ms") is not None:
                v2v.append(float(out["voice_to_voice_ms"]))
            jitter = out.get("greeting_jitter") or {}
            if "accelerated_ms" in jitter:
                accelerated.append(float(jitter["accelerated_ms"]))
            print(f"round {n + 1}: greeting {out['greeting_ms']} ms "
                  f"(onset {out.get('greeting_onset_dbfs')} dBFS), "
                  f"voice-to-voice {out.get('voice_to_voice_ms')} ms, jitter buffer {jitter}",
                  flush=True)  # fmt: skip
        ready = [float(m) for m in re.findall(r"agent in the room after (\d+) ms", api.log())]
        started = [float(m) for m in re.findall(r"greeting started (-?\d+) ms after", worker.log())]
    finally:
        for proc in reversed(procs):
            proc.stop()
        ns.close()

    g, f = _median(greetings), _median(floor)
    print()
    print(f"{'measure (median of ' + str(rounds) + ')':<52} {'ms':>8}")
    print(f"{'floor: newcomer hears a publisher already there':<52} {f:>8}")
    print(f"{'floor: newcomer hears a publisher start speaking':<52} {_median(start_floor):>8}")
    print(f"{'Parley: caller joins -> first greeting audio':<52} {g:>8}   ({g / f:.2f}x floor)")
    print(f"{'  worst round':<52} {max(greetings):>8}")
    within = sum(1 for x in started if x <= 300)
    print(f"{'agent: caller joined (server) -> greeting starts':<52} {_median(started):>8}"
          f"   (rounds: {', '.join(f'{x:.0f}' for x in started)}; {within} <= 300 ms)")  # fmt: skip
    print(f"{'  audio the caller sped past to drain its buffer':<52} {_median(accelerated):>8}")
    print(f"{'POST /v1/sessions/web -> agent in the room':<52} {_median(ready):>8}")
    print(f"{'voice-to-voice (end of question -> reply audio)':<52} {_median(v2v):>8}")


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=8)
    main(p.parse_args().rounds)
