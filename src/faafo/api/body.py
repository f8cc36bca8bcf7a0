"""Reading request bodies with a size limit, before any large allocation."""

from __future__ import annotations

import json
from typing import Any

from fastapi import Request

from faafo.api.errors import ApiError


async def read_limited(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            if int(declared) > limit:
                raise ApiError(413, f"request body of {declared} bytes exceeds the limit {limit}")
        except ValueError:
            raise ApiError(400, "bad Content-Length") from None
    received = bytearray()
    async for part in request.stream():
        received += part
        if len(received) > limit:
            raise ApiError(413, f"request body exceeds the limit of {limit} bytes")
    return bytes(received)


async def read_json(request: Request, limit: int) -> Any:
    """The original's rules: JSON only (415 otherwise), well-formed (400 otherwise)."""
    content_type = request.headers.get("content-type", "")
    if content_type.split(";")[0].strip().lower() != "application/json":
        raise ApiError(415, "expected Content-Type: application/json")
    raw = await read_limited(request, limit)
    try:
        return json.loads(raw, parse_constant=_refuse_constant)
    except (ValueError, UnicodeDecodeError):
        raise ApiError(400, "request body is not valid JSON") from None


def _refuse_constant(name: str) -> float:
    raise ValueError(f"{name} is not a number")
