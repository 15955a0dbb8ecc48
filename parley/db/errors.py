"""Database errors. Each message says what went wrong and how to fix it."""

from __future__ import annotations

from parley.errors import ParleyError


class DatabaseError(ParleyError):
    """Base class for the database layer's errors."""


class DatabaseUnavailable(DatabaseError):
    """The database cannot be reached (wrong URL, server down, bad credentials)."""


class EmbeddedPostgresError(DatabaseError):
    """The embedded Postgres (pgserver) cannot be started or stopped."""


class MigrationError(DatabaseError):
    """A migration file is malformed, or applying it failed (nothing of it was kept)."""
