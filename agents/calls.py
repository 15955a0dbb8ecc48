"""The call row a runtime serves: load it with its agent, follow its status, write its turns.

Runtimes (LiveKit worker, browser peer-to-peer, SIP) share this so every call has the same
lifecycle in the database: created/ringing → in_progress → completed/failed with an end reason.
Status updates are conditional (``where status in (...)``), so a worker and the API's LiveKit
webhook can race on the same row without an illegal transition or a lost end reason.
Everything here runs on the service path (the pool's owner role): rows are always filtered by
the call's own id and organization.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import asyncpg
from loguru import logger

from agents.stored import bind_secrets, one_line, parse_stored
from parley.config import AgentConfig
from parley.errors import ConfigError, ParleyError
from parley.settings import Settings, get_settings
from pipelines.transcript import Turn, TurnSink

# Reasons a call ends with status "failed" rather than "completed".
FAILURE_REASONS = frozenset(
    {
        "error",
        "cancelled",
        "connect_failed",
        "dispatch_failed",
        "no_agent",
        "never_joined",
        "config_refused",
    }
)


class CallNotFound(ParleyError):
    """No such call, or its agent was deleted."""


@dataclass(frozen=True, slots=True)
class CallContext:
    call_id: UUID
    org_id: UUID
    agent_id: UUID
    agent: AgentConfig
    direction: str
    status: str
    room_name: str | None
    metadata: dict[str, Any]


def _iso(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC)


def _ms(value: float | None) -> int | None:
    return None if value is None else max(0, round(value))


class CallRefused(CallNotFound):
    """The agent's stored config is not allowed to run (see pipelines/policy.py)."""


class CallStore:
    def __init__(self, pool: asyncpg.Pool, settings: Settings | None = None) -> None:
        self.pool = pool
        self.settings = settings or get_settings()

    async def load(self, call_id: UUID, org_id: UUID | None = None) -> CallContext:
        """The call and its agent's config. ``org_id`` (from job metadata) must match when given."""
        row = await self.pool.fetchrow(
            "select c.id, c.org_id, c.agent_id, c.direction, c.status, c.room_name, c.metadata,"
            " a.config from public.calls c join public.agents a"
            " on a.id = c.agent_id and a.org_id = c.org_id"
            " where c.id = $1 and ($2::uuid is null or c.org_id = $2)",
            call_id,
            org_id,
        )
        if row is None:
            raise CallNotFound(f"call {call_id} not found (or its agent was deleted)")
        config = row["config"]
        metadata = row["metadata"]
        # Stored configs are a tenant's: checked again here (they may predate the rules), and
        # they get their organization's secrets, never the server's environment.
        try:
            agent = parse_stored(config, self.settings, row["agent_id"])
        except ConfigError as err:
            await self.pool.execute(
                "update public.calls set status = 'failed', end_reason = 'config_refused',"
                " ended_at = now() where id = $1 and status in ('created', 'ringing')",
                row["id"],
            )
            raise CallRefused(f"call {call_id}: {one_line(err)}") from None
        async with self.pool.acquire() as conn:
            agent = await bind_secrets(conn, agent, row["org_id"], self.settings)
        return CallContext(
            call_id=row["id"],
            org_id=row["org_id"],
            agent_id=row["agent_id"],
            agent=agent,
            direction=row["direction"],
            status=row["status"],
            room_name=row["room_name"],
            metadata=json.loads(metadata) if isinstance(metadata, str) else dict(metadata),
        )

    async def mark_in_progress(self, call: CallContext) -> bool:
        """The caller is connected: in_progress, stamping started/answered once."""
        moved = await self.pool.fetchval(
            "update public.calls set status = 'in_progress',"
            " started_at = coalesce(started_at, now()), answered_at = coalesce(answered_at, now())"
            " where id = $1 and org_id = $2 and status in ('created', 'ringing') returning true",
            call.call_id,
            call.org_id,
        )
        return bool(moved)

    async def finish(self, call: CallContext, end_reason: str) -> str | None:
        """Final status from the end reason; a call that never connected fails. Returns the
        status written, or None when the call had already ended (e.g. by the webhook)."""
        status = "failed" if end_reason in FAILURE_REASONS else "completed"
        written = await self.pool.fetchval(
            "update public.calls set"
            " status = case when status = 'in_progress' then $3 else 'failed' end,"
            " end_reason = $4, ended_at = now()"
            " where id = $1 and org_id = $2 and status in ('created', 'ringing', 'in_progress')"
            " returning status",
            call.call_id,
            call.org_id,
            status,
            end_reason,
        )
        if written is None:
            # Already ended elsewhere (webhook room_finished): keep the worker's precise reason.
            await self.pool.execute(
                "update public.calls set end_reason = $3 where id = $1 and org_id = $2"
                " and end_reason in ('room_finished', 'no_participant')",
                call.call_id,
                call.org_id,
                end_reason,
            )
        return str(written) if written is not None else None

    async def write_turn(self, call: CallContext, turn: Turn) -> None:
        lat = turn.latency
        chunk_ids = [UUID(i) for i in turn.extra.get("knowledge_chunk_ids", [])]
        await self.pool.execute(
            "insert into public.call_turns (org_id, call_id, idx, role, text, started_at,"
            " ended_at, interrupted, stt_final_ms, llm_first_token_ms, tts_first_audio_ms,"
            " voice_to_voice_ms, knowledge_chunk_ids)"
            " values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)"
            " on conflict (call_id, idx) do nothing",
            call.org_id,
            call.call_id,
            turn.index,
            turn.role,
            turn.text,
            _iso(turn.started_at),
            _iso(turn.ended_at),
            turn.interrupted,
            _ms(lat.stt_final_ms) if lat else None,
            _ms(lat.llm_first_token_ms) if lat else None,
            _ms(lat.tts_first_audio_ms) if lat else None,
            _ms(lat.voice_to_voice_ms) if lat else None,
            chunk_ids,
        )

    def turn_sink(self, call: CallContext) -> TurnSink:
        """Each turn is written as soon as it ends (a crash loses nothing already said)."""

        async def sink(turn: Turn) -> None:
            await self.write_turn(call, turn)
            logger.debug(f"turn {turn.index} ({turn.role}) saved")

        return sink
