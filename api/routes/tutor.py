"""The browser voice tutor: ``GET /tutor`` and its built assets under ``/tutor/assets/``.

The page is built from ``web/tutor`` by ``scripts/build_web.sh`` (run by the set-up script,
never at request time) into ``api/static/tutor``. Asset names carry a content hash, so they
are cached for good; the page itself is revalidated. Without a build, both answer 503 in the
one error shape, saying how to build it.
"""

from __future__ import annotations

import re
from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse

from api.errors import ApiError

router = APIRouter(tags=["tutor"], include_in_schema=False)

# Looked up per request, so tests (and a packaged install) can point it elsewhere.
BUNDLE_DIR = Path(__file__).resolve().parents[1] / "static" / "tutor"

_TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".map": "application/json",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
}
_ASSET_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,120}$")
# The page only talks to this API and to the LiveKit server the API names (any ws/http URL).
_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "media-src 'self' blob: mediastream:; connect-src 'self' ws: wss: http: https:; "
    "worker-src 'self' blob:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
)
_PAGE_HEADERS = {
    "Cache-Control": "no-cache",
    "Content-Security-Policy": _CSP,
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Permissions-Policy": "microphone=(self), camera=()",
}
_ASSET_HEADERS = {
    "Cache-Control": "public, max-age=31536000, immutable",
    "X-Content-Type-Options": "nosniff",
}


def _not_built() -> ApiError:
    return ApiError(
        503,
        "tutor_not_built",
        "the tutor page is not built: run `bash scripts/build_web.sh` (needs Node.js 20+ "
        "and npm), or `make setup`, then reload",
    )


@router.get("/tutor", summary="The browser voice tutor page")
@router.get("/tutor/", summary="The browser voice tutor page")
async def tutor_page() -> FileResponse:
    index = BUNDLE_DIR / "index.html"
    if not index.is_file():
        raise _not_built()
    return FileResponse(index, media_type="text/html; charset=utf-8", headers=_PAGE_HEADERS)


@router.get("/tutor/assets/{name}", summary="A built asset of the tutor page")
async def tutor_asset(name: str) -> FileResponse:
    assets = BUNDLE_DIR / "assets"
    if not assets.is_dir():
        raise _not_built()
    # Flat names only: no path separators or dot-files can reach outside the bundle.
    path = assets / name
    if not _ASSET_NAME.match(name) or not path.is_file():
        raise ApiError(404, "not_found", f"no tutor asset named {name!r}")
    media = _TYPES.get(path.suffix, "application/octet-stream")
    return FileResponse(path, media_type=media, headers=_ASSET_HEADERS)
