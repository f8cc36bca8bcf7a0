"""Reading request bodies with a size limit, before any large allocation.

JSON is parsed here rather than by FastAPI so that every way a body can be bad
gets its own clear answer: 415 for another content type, 400 for malformed or
absurdly nested JSON (Python's parser recurses and would raise RecursionError,
a 500), and, for arrays of tasks, 422 as soon as the item count passes the
limit, before the rest of the array is even parsed.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import Request

from faafo.api.errors import ApiError

_WHITESPACE = " \t\n\r"


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


def require_json(request: Request) -> None:
    """The original's rule: JSON bodies say so (415 otherwise)."""
    content_type = request.headers.get("content-type", "")
    if content_type.split(";")[0].strip().lower() != "application/json":
        raise ApiError(415, "expected Content-Type: application/json")


async def read_json(request: Request, limit: int, *, max_items: int | None = None) -> Any:
    """The request's JSON (415, 413 or 400 otherwise); see :func:`parse_json`."""
    require_json(request)
    return parse_json(await read_limited(request, limit), max_items=max_items)


def parse_json(
    raw: bytes | str, *, max_items: int | None = None, what: str = "request body"
) -> Any:
    """Parse JSON strictly: no NaN/Infinity, no nesting deep enough to exhaust the stack.

    With ``max_items``, a top-level array longer than that is refused (422) while
    it is parsed: the items are decoded one at a time and counting stops at the
    first one over the limit.
    """
    try:
        text = raw.decode(json.detect_encoding(raw)) if isinstance(raw, bytes) else raw
        if max_items is not None:
            items = _parse_array(text, max_items, what)
            if items is not None:
                return items
        return _DECODER.decode(text)
    except RecursionError:
        raise ApiError(400, f"{what} is not valid JSON: it nests too deeply") from None
    except (ValueError, UnicodeDecodeError):
        raise ApiError(400, f"{what} is not valid JSON") from None


def _parse_array(text: str, max_items: int, what: str) -> list[Any] | None:
    """The items of a top-level JSON array, or None when ``text`` is not an array."""
    end = len(text)
    at = _skip(text, 0)
    if at >= end or text[at] != "[":
        return None
    items: list[Any] = []
    at = _skip(text, at + 1)
    if at < end and text[at] == "]":
        return _trailing(text, at + 1, items)
    while True:
        if len(items) == max_items:
            raise ApiError(
                422, f"at least {max_items + 1} tasks in one request; the limit is {max_items}"
            )
        item, at = _DECODER.raw_decode(text, at)
        items.append(item)
        at = _skip(text, at)
        if at < end and text[at] == ",":
            at = _skip(text, at + 1)
            continue
        if at < end and text[at] == "]":
            return _trailing(text, at + 1, items)
        raise ValueError(f"{what}: expected ',' or ']' at character {at}")


def _trailing(text: str, at: int, items: list[Any]) -> list[Any]:
    if _skip(text, at) != len(text):
        raise ValueError("extra data after the array")
    return items


def _skip(text: str, at: int) -> int:
    while at < len(text) and text[at] in _WHITESPACE:
        at += 1
    return at


def _refuse_constant(name: str) -> float:
    raise ValueError(f"{name} is not a number")


_DECODER = json.JSONDecoder(parse_constant=_refuse_constant)
