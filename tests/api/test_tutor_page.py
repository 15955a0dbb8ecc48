"""The voice tutor page at /tutor: the built bundle, its hashed assets, and a clear 503 in the
one error shape when the bundle was not built."""

from __future__ import annotations

import re
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import pytest_asyncio

from api.app import create_app
from api.routes import tutor
from parley.settings import Settings

ROOT = Path(__file__).resolve().parents[2]


@pytest_asyncio.fixture
async def client(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    # No lifespan: serving the page needs no database.
    app = create_app(settings=Settings(data_dir=tmp_path))  # type: ignore[call-arg]
    if not any(getattr(r, "path", None) == "/tutor" for r in app.routes):
        app.include_router(tutor.router)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as c:
        yield c


@pytest.fixture
def bundle(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "tutor"
    (root / "assets").mkdir(parents=True)
    (root / "index.html").write_text(
        '<!doctype html><script type="module" src="/tutor/assets/app-ABC.js"></script>'
    )
    (root / "assets" / "app-ABC.js").write_text("console.log('hi')")
    (root / "assets" / "style-ABC.css").write_text("body{}")
    (root / "assets" / ".hidden").write_text("no")
    (root / "secret.txt").write_text("outside assets")
    monkeypatch.setattr(tutor, "BUNDLE_DIR", root)
    return root


async def test_page_and_assets_are_served(client: httpx.AsyncClient, bundle: Path) -> None:
    for path in ("/tutor", "/tutor/"):
        page = await client.get(path)
        assert page.status_code == 200, page.text
        assert page.headers["content-type"] == "text/html; charset=utf-8"
        assert page.headers["cache-control"] == "no-cache"
        assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
        assert "/tutor/assets/app-ABC.js" in page.text
    js = await client.get("/tutor/assets/app-ABC.js")
    assert js.status_code == 200 and js.text == "console.log('hi')"
    assert js.headers["content-type"] == "text/javascript; charset=utf-8"
    assert "immutable" in js.headers["cache-control"]
    css = await client.get("/tutor/assets/style-ABC.css")
    assert css.headers["content-type"] == "text/css; charset=utf-8"


@pytest.mark.parametrize(
    "name", ["nope.js", ".hidden", "..%2Fsecret.txt", "..%2F..%2Findex.html", "%2E%2E"]
)
async def test_only_files_of_the_assets_folder(
    client: httpx.AsyncClient, bundle: Path, name: str
) -> None:
    resp = await client.get(f"/tutor/assets/{name}")
    assert resp.status_code == 404
    assert resp.json()["error"]["code"] == "not_found"


async def test_missing_bundle_says_how_to_build_it(
    client: httpx.AsyncClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tutor, "BUNDLE_DIR", tmp_path / "not-built")
    for path in ("/tutor", "/tutor/assets/app-ABC.js"):
        resp = await client.get(path)
        assert resp.status_code == 503
        err = resp.json()["error"]
        assert err["code"] == "tutor_not_built"
        assert "scripts/build_web.sh" in err["message"]
        assert err["request_id"] == resp.headers["x-request-id"]


async def test_the_built_page(client: httpx.AsyncClient) -> None:
    """The real bundle from ``scripts/build_web.sh`` (set-up runs it): every asset the page
    names is served, and the page has the hooks the browser tests wait on."""
    if not (tutor.BUNDLE_DIR / "index.html").is_file():
        pytest.fail("the tutor page is not built: run `bash scripts/build_web.sh`")
    page = await client.get("/tutor")
    assert page.status_code == 200
    for hook in ('data-call-state="idle"', 'id="captions"', 'id="join"', 'id="hangup"'):
        assert hook in page.text
    refs = re.findall(r'(?:src|href)="(/tutor/assets/[^"]+)"', page.text)
    assert {Path(r).suffix for r in refs} == {".js", ".css"}
    for ref in refs:
        asset = await client.get(ref)
        assert asset.status_code == 200, ref
        assert asset.content
    app_js = next(r for r in refs if r.endswith(".js"))
    code = (await client.get(app_js)).text
    # The LiveKit client is a separate chunk, loaded only in LiveKit mode.
    assert len(code) < 60_000
    chunk = re.search(r'import\("\./(chunk-[A-Z0-9]+\.js)"\)', code)
    assert chunk, "the LiveKit client should be imported on demand"
    lk = await client.get(f"/tutor/assets/{chunk.group(1)}")
    assert lk.status_code == 200 and "livekit" in lk.text.lower()


def _node(*argv: str) -> str:
    web = ROOT / "web" / "tutor"
    if not (web / "node_modules" / "esbuild").is_dir():
        pytest.fail("the tutor page's npm packages are missing: run `bash scripts/build_web.sh`")
    done = subprocess.run(argv, cwd=web, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    return done.stdout


def test_page_logic() -> None:
    """The page's own unit tests (web/tutor/test: RTVI messages → captions, states, latency)."""
    assert "# fail 0" in _node("node", "test/run.mjs")


def test_page_source_format() -> None:
    """Prettier, as ruff format for the Python side (``scripts/build_web.sh`` type-checks: a
    type error fails the build)."""
    _node("node_modules/.bin/prettier", "--check", "src", "test", "build.mjs")
