"""Organization secrets, encrypted at rest with AES-GCM under the server's key ring.

``PARLEY_SECRETS_KEY`` (base64, 32 bytes) encrypts; ``PARLEY_SECRETS_OLD_KEYS`` (comma-
separated) still decrypt, so a key can be rotated: set the new key, move the old one to
``OLD_KEYS``, run ``parley db rotate-secrets``, then drop the old key. Without a configured key
(the embedded default) one is generated once into ``<data_dir>/secrets.key`` (mode 0600).
The additional data binds each ciphertext to its organization and name: a row copied to
another organization or name does not decrypt.
"""

from __future__ import annotations

import base64
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from uuid import UUID

import asyncpg
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from loguru import logger

from parley.errors import ConfigError, ParleyError
from parley.refs import SECRET_NAME
from parley.settings import Settings

NAME = SECRET_NAME  # what ${secrets.NAME} may name
MAX_VALUE_CHARS = 8192


class SecretError(ParleyError):
    """A secret can't be decrypted (wrong or missing key)."""


def _key_id(key: bytes) -> str:
    return hashlib.sha256(key).hexdigest()[:8]


def _decode(text: str, what: str) -> bytes:
    try:
        key = base64.b64decode(text.strip(), validate=True)
    except ValueError:
        key = b""
    if len(key) != 32:
        raise ConfigError(
            f"{what} must be 32 random bytes in base64 "
            "(fix: python -c 'import os,base64;print(base64.b64encode(os.urandom(32)).decode())')"
        )
    return key


@dataclass(frozen=True)
class KeyRing:
    current: bytes
    old: tuple[bytes, ...] = ()

    @property
    def current_id(self) -> str:
        return _key_id(self.current)

    def _by_id(self, key_id: str) -> bytes | None:
        for key in (self.current, *self.old):
            if _key_id(key) == key_id:
                return key
        return None

    def encrypt(self, org_id: UUID, name: str, value: str) -> tuple[bytes, bytes, str]:
        nonce = os.urandom(12)
        data = AESGCM(self.current).encrypt(nonce, value.encode(), _aad(org_id, name))
        return data, nonce, self.current_id

    def decrypt(self, org_id: UUID, name: str, data: bytes, nonce: bytes, key_id: str) -> str:
        key = self._by_id(key_id)
        if key is None:
            raise SecretError(f"secret {name} was encrypted with key {key_id}, which is not set")
        try:
            return AESGCM(key).decrypt(nonce, data, _aad(org_id, name)).decode()
        except InvalidTag:
            raise SecretError(f"secret {name} does not decrypt (tampered or moved)") from None


def _aad(org_id: UUID, name: str) -> bytes:
    return f"parley-secret:{org_id}:{name}".encode()


def key_ring(settings: Settings) -> KeyRing:
    old = tuple(
        _decode(k, "PARLEY_SECRETS_OLD_KEYS") for k in settings.secrets_old_keys.split(",") if k
    )
    if settings.secrets_key:
        return KeyRing(_decode(settings.secrets_key, "PARLEY_SECRETS_KEY"), old)
    return KeyRing(_local_key(settings.data_dir / "secrets.key"), old)


def _local_key(path: Path) -> bytes:
    if path.exists():
        return _decode(path.read_text(encoding="ascii"), str(path))
    path.parent.mkdir(parents=True, exist_ok=True)
    key = os.urandom(32)
    # O_EXCL: two processes starting together keep one key (the loser reads the winner's).
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return _decode(path.read_text(encoding="ascii"), str(path))
    with os.fdopen(fd, "w", encoding="ascii") as f:
        f.write(base64.b64encode(key).decode())
    logger.info(f"secrets: generated a local encryption key at {path} (set PARLEY_SECRETS_KEY)")
    return key


# --- storage (service path) ---------------------------------------------------------------


async def put(conn: asyncpg.Connection, ring: KeyRing, org_id: UUID, name: str, value: str) -> None:
    data, nonce, key_id = ring.encrypt(org_id, name, value)
    await conn.execute(
        "insert into private.org_secrets (org_id, name, ciphertext, nonce, key_id) "
        "values ($1, $2, $3, $4, $5) on conflict (org_id, name) do update set "
        "ciphertext = excluded.ciphertext, nonce = excluded.nonce, key_id = excluded.key_id",
        org_id,
        name,
        data,
        nonce,
        key_id,
    )


async def delete(conn: asyncpg.Connection, org_id: UUID, name: str) -> bool:
    done: str = await conn.execute(
        "delete from private.org_secrets where org_id = $1 and name = $2", org_id, name
    )
    return not done.endswith(" 0")


async def load(conn: asyncpg.Connection, ring: KeyRing, org_id: UUID) -> dict[str, str]:
    """Every secret of the organization, decrypted (for binding to an agent at run time). A
    secret that does not decrypt is left out and logged by name: a reference to it then fails
    with "not set" instead of failing the whole call."""
    rows = await conn.fetch(
        "select name, ciphertext, nonce, key_id from private.org_secrets where org_id = $1",
        org_id,
    )
    out: dict[str, str] = {}
    for r in rows:
        try:
            out[r["name"]] = ring.decrypt(
                org_id, r["name"], r["ciphertext"], r["nonce"], r["key_id"]
            )
        except SecretError as err:
            logger.error(f"secrets: {err}")
    return out


async def rotate(conn: asyncpg.Connection, ring: KeyRing) -> int:
    """Re-encrypt every row not under the current key; returns how many."""
    rows = await conn.fetch(
        "select org_id, name, ciphertext, nonce, key_id from private.org_secrets "
        "where key_id <> $1 for update",
        ring.current_id,
    )
    for r in rows:
        value = ring.decrypt(r["org_id"], r["name"], r["ciphertext"], r["nonce"], r["key_id"])
        await put(conn, ring, r["org_id"], r["name"], value)
    return len(rows)
