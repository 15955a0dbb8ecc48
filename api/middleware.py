"""Request id, body size limit. Pure ASGI, so bodies are counted as they stream in."""

from __future__ import annotations

import json
import re
import uuid
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send


class BodyTooLarge(Exception):
    pass


# The routes that take file uploads: only they get the upload limit (a multipart content type
# on any other route gets the ordinary JSON body limit).
UPLOAD_PATHS = re.compile(r"^/v1/(knowledge-bases/[^/]+/documents|contacts/import)$")


class RequestGuard:
    """Assigns ``request.state.request_id`` and refuses bodies over the limit with 413."""

    def __init__(self, app: ASGIApp, *, max_body: int, max_upload: int) -> None:
        self.app, self.max_body, self.max_upload = app, max_body, max_upload

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = uuid.uuid4().hex[:16]
        scope.setdefault("state", {})["request_id"] = rid
        headers = dict(scope.get("headers") or [])
        ctype = headers.get(b"content-type", b"").decode("latin-1")
        upload = ctype.startswith("multipart/") and UPLOAD_PATHS.match(scope.get("path", ""))
        limit = self.max_upload if upload else self.max_body
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await _too_large(send, rid, limit)
            return
        seen = 0
        started = exceeded = replaced = False

        async def counting_receive() -> Message:
            nonlocal seen, exceeded
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    exceeded = True
                    raise BodyTooLarge
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started, replaced
            # FastAPI turns any error while reading the body into its own 400, so the
            # exception may never reach us: the app's answer is swapped for the 413 instead.
            if exceeded and not started:
                started = replaced = True
                await _too_large(send, rid, limit)
                return
            if replaced:
                return
            if message["type"] == "http.response.start":
                started = True
                message.setdefault("headers", []).append((b"x-request-id", rid.encode()))
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except BodyTooLarge:
            if not started:
                await _too_large(send, rid, limit)


async def _too_large(send: Send, rid: str, limit: int) -> None:
    payload: dict[str, Any] = {
        "error": {
            "code": "payload_too_large",
            "message": f"the request body is over the {limit} byte limit",
            "details": [],
            "request_id": rid,
        }
    }
    body = json.dumps(payload).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
