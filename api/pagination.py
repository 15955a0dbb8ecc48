"""Opaque cursors for keyset pagination over (created_at, id), newest first."""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from api.errors import ApiError


def encode(created_at: datetime, id_: UUID) -> str:
    raw = json.dumps([created_at.isoformat(), str(id_)]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def after(cursor: str | None, args: list[Any], alias: str = "") -> str | None:
    """The SQL condition for rows after ``cursor`` (its two values appended to ``args``)."""
    if not cursor:
        return None
    ts, last = decode(cursor)
    args += [ts, last]
    col = f"{alias}." if alias else ""
    return f"({col}created_at, {col}id) < (${len(args) - 1}, ${len(args)})"


def next_cursor(rows: Sequence[Any], limit: int) -> str | None:
    """``next_cursor`` for a page fetched with ``limit + 1`` rows, newest first."""
    if len(rows) <= limit:
        return None
    last = rows[limit - 1]
    return encode(last["created_at"], last["id"])


def decode(cursor: str) -> tuple[datetime, UUID]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        ts, id_ = json.loads(raw)
        if not isinstance(ts, str) or not isinstance(id_, str):
            raise TypeError("cursor parts must be strings")
        # A forged cursor must fail here, not in the database (e.g. a year-1 date at +05:00
        # cannot be converted to UTC): 400, not 500.
        when = datetime.fromisoformat(ts)
        when = when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)
        return when, UUID(id_)
    except (ValueError, TypeError, OverflowError) as err:
        raise ApiError(
            400, "bad_cursor", "the cursor is not valid; use next_cursor as given"
        ) from err
