"""Request body limits for every route, enforced before the body is read into memory.

Route handlers parse JSON or multipart themselves or through FastAPI; either
way a body larger than the limit must be refused (413) whether its length
is declared or it streams in chunks. Uploads of rendered images get the
larger ``max_upload_bytes``; everything else ``max_request_bytes``.
"""

from __future__ import annotations

import json
import re

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

_UPLOADS = re.compile(r"^/v1/(worker/results|worker/bands/[^/]+/\d+|fractal/[^/]+)$")


class BodyTooLarge(HTTPException):
    """Raised while the body streams in; an HTTPException so body parsers pass it through."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request body exceeds the limit of {limit} bytes")


class BodyLimit:
    def __init__(self, app: ASGIApp, *, request_bytes: int, upload_bytes: int) -> None:
        self.app = app
        self.request_bytes = request_bytes
        self.upload_bytes = upload_bytes

    def _limit_for(self, scope: Scope) -> int:
        if scope["method"] in ("PUT", "POST") and _UPLOADS.match(scope["path"]):
            return self.upload_bytes
        return self.request_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self._limit_for(scope)
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await _refuse(send, limit)
            return
        received = 0
        response_started = False

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal response_started
            if message["type"] == "http.response.start":
                response_started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except BodyTooLarge:
            if not response_started:
                await _refuse(send, limit)


async def _refuse(send: Send, limit: int) -> None:
    body = json.dumps({"code": 413, "message": f"request body exceeds the limit of {limit} bytes"})
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
    await send({"type": "http.response.body", "body": body.encode()})
