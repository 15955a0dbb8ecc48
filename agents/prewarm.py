"""What an idle worker process loads before it gets a call: the providers the stored agents use.

Prewarming the settings' default providers loads Whisper and Piper (seconds of CPU and ~300 MB
per process) even when every agent talks through cloud providers, and a process-per-call
worker pays that again for each replacement process. So each idle process reads the distinct
provider choices of the agents in the database (a handful of rows, whatever the number of
agents) and prewarms those; with no agents, or no database reachable, the defaults. Model and
voice names are tenants' input: a setup naming one that is not in the installed catalogue is
skipped (its calls report it), so prewarming only ever opens catalogue files.
"""

from __future__ import annotations

import asyncio
import json
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from loguru import logger
from pydantic import ValidationError

from parley.config import AgentConfig
from parley.db.database import database_url
from parley.settings import Settings
from pipelines.services.local.models import catalogue_problems

MAX_CHOICES = 8  # distinct provider setups prewarmed per process (each may hold a model)
# Setups read (short JSON rows): more than are kept, so setups naming a model that is not
# installed do not crowd out the others.
READ_CHOICES = 4 * MAX_CHOICES
QUERY_TIMEOUT_SECS = 10.0

_CHOICES_SQL = f"""
select distinct config -> 'stt' as stt, config -> 'llm' as llm, config -> 'tts' as tts,
       config -> 'turns' -> 'smart_turn' as smart_turn
from public.agents
limit {READ_CHOICES}
"""


def default_agent() -> AgentConfig:
    return AgentConfig(name="prewarm", system_prompt="prewarm")


def agents_to_prewarm(settings: Settings) -> list[AgentConfig]:
    """One stand-in agent per distinct provider setup in the database (the default one when
    there are none or the database cannot be read). Blocking: call from a process's set-up."""
    # In a thread of its own: the caller may be inside a running event loop.
    with ThreadPoolExecutor(1) as pool:
        try:
            rows = pool.submit(asyncio.run, _choices(settings)).result(QUERY_TIMEOUT_SECS + 5)
        except Exception as err:  # the process still serves calls, models load on first use
            logger.warning(f"prewarm: could not read the agents' providers ({err}); defaults")
            return [default_agent()]
    stand_ins = [a for row in rows if (a := _stand_in(row)) is not None]
    agents = [a for a in stand_ins if not catalogue_problems(a, settings)]
    if len(agents) < len(stand_ins):
        logger.warning(
            f"prewarm: skipped {len(stand_ins) - len(agents)} setup(s) naming a model or voice "
            "that is not installed"
        )
    return agents[:MAX_CHOICES] or [default_agent()]


async def _choices(settings: Settings) -> list[dict[str, Any]]:
    import asyncpg

    conn = await asyncpg.connect(await database_url(settings), timeout=QUERY_TIMEOUT_SECS)
    try:
        rows = await conn.fetch(_CHOICES_SQL, timeout=QUERY_TIMEOUT_SECS)
    finally:
        await conn.close()
    return [{k: json.loads(v) for k, v in row.items() if v is not None} for row in rows]


def _stand_in(row: dict[str, Any]) -> AgentConfig | None:
    fields: dict[str, Any] = {k: row[k] for k in ("stt", "llm", "tts") if k in row}
    if "smart_turn" in row:
        fields["turns"] = {"smart_turn": row["smart_turn"]}
    try:
        return AgentConfig(name="prewarm", system_prompt="prewarm", **fields)
    except ValidationError:  # written by an older version: its calls will say what is wrong
        return None
