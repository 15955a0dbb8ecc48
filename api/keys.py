"""API keys: secret keys ``pk_<prefix>_<secret>`` and publishable browser keys
``pub_<prefix>_<secret>``. Only the prefix (to find the row) and a hash are stored."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

PREFIX_LEN = 8
TOKEN_PREFIX = {"secret": "pk", "publishable": "pub"}
SCOPES = ("agents", "knowledge", "contacts", "calls", "admin")


@dataclass(frozen=True)
class NewKey:
    token: str  # shown once, never stored
    prefix: str
    hash: str


def hash_token(token: str) -> str:
    # The secret part is 32 random bytes: a fast hash is enough (no password stretching needed).
    return hashlib.sha256(token.encode()).hexdigest()


def new_key(kind: str = "secret") -> NewKey:
    prefix = secrets.token_hex(PREFIX_LEN // 2)
    token = f"{TOKEN_PREFIX[kind]}_{prefix}_{secrets.token_urlsafe(32)}"
    return NewKey(token, prefix, hash_token(token))


def parse_prefix(token: str) -> str | None:
    parts = token.split("_", 2)
    if len(parts) != 3 or parts[0] not in TOKEN_PREFIX.values() or len(parts[1]) != PREFIX_LEN:
        return None
    return parts[1]


def matches(token: str, stored_hash: str) -> bool:
    return hmac.compare_digest(hash_token(token), stored_hash)


def is_api_key(token: str) -> bool:
    return token.startswith(tuple(f"{p}_" for p in TOKEN_PREFIX.values()))
