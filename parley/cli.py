"""``parley``: the command line. Every failure a user can fix prints one clear message, exit 2."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from api.cli import keys_app, serve
from api.up import up
from parley import log
from parley.config import load_agent, preset_names
from parley.db.cli import app as db_app
from parley.errors import ParleyError
from parley.settings import get_settings

app = typer.Typer(no_args_is_help=True, add_completion=False, help=__doc__)

AgentOpt = Annotated[
    str,
    typer.Option(
        "--agent", "-a", help=f"Agent YAML/JSON file or preset ({', '.join(preset_names())})."
    ),
]


def _fail(err: Exception) -> None:
    typer.secho(f"error: {err}", fg=typer.colors.RED, err=True)
    raise typer.Exit(2)


def _setup_logs(verbose: bool) -> None:
    s = get_settings()
    log.configure("DEBUG" if verbose else s.log_level, s.log_json)


@app.command()
def talk(
    agent: AgentOpt = "dental",
    wav: Annotated[list[Path] | None, typer.Option(help="User utterance WAV (repeatable).")] = None,
    out: Annotated[
        Path, typer.Option(help="Folder for agent-turn-N.wav + transcript.json.")
    ] = Path("out/talk"),
    text: Annotated[bool, typer.Option("--text", help="Keyboard chat with the same LLM.")] = False,
    verbose: bool = False,
) -> None:
    """Talk to an agent: WAV files in, the agent's audio and a timed transcript out."""
    _setup_logs(verbose)
    try:
        config = load_agent(agent)
        if text:
            from agents.text.chat import chat

            asyncio.run(chat(config, get_settings()))
            return
        if not wav:
            raise ParleyError("give --wav FILE (repeatable) or --text (fix: parley talk --help)")
        from agents.file.session import talk as run_talk

        result = asyncio.run(run_talk(config, list(wav), out, get_settings()))
    except ParleyError as err:
        _fail(err)
        return
    for t in result.turns:
        lat = (
            f"  [{t.latency.voice_to_voice_ms:.0f} ms]"
            if t.latency and t.latency.voice_to_voice_ms
            else ""
        )
        typer.echo(f"{t.role:>9}: {t.text}{lat}")
    typer.echo(f"wrote {out / 'transcript.json'} and {len(result.audio_files)} agent WAV(s)")


@app.command()
def demo(
    question: str = "Hello! What are your opening hours on Saturday?",
    agent: AgentOpt = "dental",
    out: Path = Path("out/demo"),
) -> None:
    """The offline demo: speak a question (synthesized with Piper) to an agent, fully local."""
    _setup_logs(False)
    try:
        from agents.file.demo import run_demo

        result = asyncio.run(run_demo(load_agent(agent), question, out, get_settings()))
    except ParleyError as err:
        _fail(err)
        return
    for t in result.turns:
        typer.echo(f"{t.role:>9}: {t.text}")
    typer.echo(f"voice-to-voice ms: {result.voice_to_voice_ms()}  (files in {out})")


@app.command()
def worker(
    max_jobs: Annotated[
        int, typer.Option(help="Calls at once; above it LiveKit sends jobs elsewhere.", min=1)
    ] = 8,
    idle_processes: Annotated[
        int, typer.Option(help="Prewarmed job processes kept ready.", min=0)
    ] = 2,
    threads: Annotated[
        bool | None,
        typer.Option(
            help="All calls in this process, on one event loop: far less CPU and memory per "
            "call (docs/benchmarks.md), but one crash ends every call of the worker. "
            "Default: PARLEY_WORKER_THREADS (false).",
        ),
    ] = None,
    health_port: Annotated[
        int, typer.Option(help="HTTP health check port (GET /); 0 = any free port.", min=0)
    ] = 0,
) -> None:
    """Run the LiveKit agent worker (LIVEKIT_URL, LIVEKIT_API_KEY, LIVEKIT_API_SECRET)."""
    s = get_settings()
    log.configure(s.log_level, s.log_json)
    try:
        from agents.livekit.worker import serve as serve_worker
        from parley.db import database_url

        if not os.environ.get("DATABASE_URL"):
            # Job processes must share one database: resolve the embedded one here, once.
            os.environ["DATABASE_URL"] = asyncio.run(database_url(s))
        serve_worker(
            s,
            max_jobs=max_jobs,
            idle_processes=idle_processes,
            threads=s.worker_threads if threads is None else threads,
            health_port=health_port,
        )
    except ParleyError as err:
        _fail(err)


app.add_typer(db_app, name="db", help="Database: apply migrations, reset.")
app.add_typer(keys_app, name="keys", help="API keys for the embedded set-up.")
app.command()(serve)
app.command()(up)

agents_app = typer.Typer(no_args_is_help=True, help="Inspect and validate agent configs.")
app.add_typer(agents_app, name="agents")


@agents_app.command("list")
def agents_list() -> None:
    """List the bundled example agents."""
    for name in preset_names():
        cfg = load_agent(name)
        typer.echo(f"{name:<12} {cfg.name}")


@agents_app.command("check")
def agents_check(path: str) -> None:
    """Validate an agent file and show which providers it would use here."""
    try:
        cfg = load_agent(path)
        from pipelines.registry import resolve

        names = resolve(cfg, get_settings()).names()
    except ParleyError as err:
        _fail(err)
        return
    typer.echo(json.dumps({"name": cfg.name, "providers": names}, indent=2))


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
