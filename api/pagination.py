"""Opaque cursors for keyset pagination over (created_at, id), newest first."""

from __future__ import annotations

import base64
import json
from datetime import datetime
from uuid import UUID

from api.errors import ApiError


def encode(created_at: datetime, id_: UUID) -> str:
    raw = json.dumps([created_at.isoformat(), str(id_)]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode(cursor: str) -> tuple[datetime, UUID]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        ts, id_ = json.loads(raw)
        return datetime.fromisoformat(ts), UUID(id_)
    except (ValueError, TypeError) as err:
        raise ApiError(
            400, "bad_cursor", "the cursor is not valid; use next_cursor as given"
        ) from err
