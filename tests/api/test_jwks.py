"""Supabase projects with asymmetric signing keys: ES256 tokens verified against the project's
JWKS, served here by a local server at Supabase's path."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from api.app import create_app
from api.settings import ApiSettings
from parley.db.settings import DatabaseSettings
from parley.settings import Settings
from tests.api.conftest import Tenant

KID = "parley-test-key"
PATH = "/auth/v1/.well-known/jwks.json"


@pytest.fixture
def project() -> Iterator[tuple[str, ec.EllipticCurvePrivateKey]]:
    key = ec.generate_private_key(ec.SECP256R1())
    jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(key.public_key()))
    body = json.dumps({"keys": [{**jwk, "kid": KID, "alg": "ES256", "use": "sig"}]}).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200 if self.path == PATH else 404)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body if self.path == PATH else b"{}")

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", key
    server.shutdown()


def _token(key: ec.EllipticCurvePrivateKey, sub: uuid.UUID, kid: str = KID) -> str:
    now = int(time.time())
    claims = {"sub": str(sub), "aud": "authenticated", "iat": now, "exp": now + 600}
    return jwt.encode(claims, key, algorithm="ES256", headers={"kid": kid})


async def test_es256_tokens_from_the_projects_jwks(
    project: tuple[str, ec.EllipticCurvePrivateKey],
    db_url: str,
    world: dict[str, Tenant],
    tmp_path: Path,
) -> None:
    url, key = project
    app = create_app(
        settings=Settings(data_dir=tmp_path),
        api_settings=ApiSettings(supabase_url=url, rate_burst=1000),
        db_settings=DatabaseSettings(url=db_url),
    )
    owner = world["A"].org.owner
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as api:

            async def get(token: str) -> httpx.Response:
                return await api.get("/v1/agents", headers={"Authorization": f"Bearer {token}"})

            ok = await get(_token(key, owner))
            assert ok.status_code == 200, ok.text
            assert {a["id"] for a in ok.json()["items"]} == {str(world["A"].org.rows["agents"])}
            forged = await get(_token(ec.generate_private_key(ec.SECP256R1()), owner))
            assert forged.status_code == 401
            unknown_kid = await get(_token(key, owner, kid="rotated-away"))
            assert unknown_kid.status_code == 401
            assert "JWKS" in unknown_kid.json()["error"]["message"]
            hs256 = await get(world["A"].jwt)  # no HS256 secret configured for this project
            assert hs256.status_code == 401
