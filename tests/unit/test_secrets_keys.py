"""The secrets key ring: the embedded default key is made once, private, and never logged; a
bad configured key is one line with the fix; ciphertexts are bound to organization and name."""

from __future__ import annotations

import base64
import os
import stat
import uuid
from pathlib import Path

import pytest
from loguru import logger

from parley import secrets
from parley.errors import ConfigError
from parley.settings import Settings


def test_the_local_key_is_made_once_with_mode_0600_and_never_logged(tmp_path: Path) -> None:
    logged: list[str] = []
    sink = logger.add(lambda m: logged.append(str(m)), level="DEBUG")
    try:
        first = secrets.key_ring(Settings(data_dir=tmp_path))  # type: ignore[call-arg]
        again = secrets.key_ring(Settings(data_dir=tmp_path))  # type: ignore[call-arg]
    finally:
        logger.remove(sink)
    path = tmp_path / "secrets.key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert first.current == again.current and len(first.current) == 32
    assert len([m for m in logged if "secrets.key" in m]) == 1  # said once, when made
    assert path.read_text() not in "".join(logged)


def test_a_configured_key_wins_and_a_bad_one_says_how_to_make_one(tmp_path: Path) -> None:
    key = os.urandom(32)
    ring = secrets.key_ring(
        Settings(data_dir=tmp_path, secrets_key=base64.b64encode(key).decode())  # type: ignore[call-arg]
    )
    assert ring.current == key and not (tmp_path / "secrets.key").exists()
    for bad in ("short", base64.b64encode(os.urandom(16)).decode()):
        with pytest.raises(ConfigError) as info:
            secrets.key_ring(Settings(data_dir=tmp_path, secrets_key=bad))  # type: ignore[call-arg]
        assert "\n" not in str(info.value) and "fix: python -c" in str(info.value)
        assert bad not in str(info.value)


def test_ciphertexts_are_bound_to_their_org_and_name_and_key() -> None:
    ring = secrets.KeyRing(os.urandom(32))
    org, other = uuid.uuid4(), uuid.uuid4()
    data, nonce, key_id = ring.encrypt(org, "TOKEN", "v")
    assert ring.decrypt(org, "TOKEN", data, nonce, key_id) == "v"
    for where, name in ((other, "TOKEN"), (org, "OTHER")):
        with pytest.raises(secrets.SecretError, match="does not decrypt"):
            ring.decrypt(where, name, data, nonce, key_id)
    with pytest.raises(secrets.SecretError, match="which is not set"):
        secrets.KeyRing(os.urandom(32)).decrypt(org, "TOKEN", data, nonce, key_id)
