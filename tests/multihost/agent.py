"""A tiny HTTP/TCP agent run inside a host's namespace, driven over stdin/stdout.

The tests' own process stays in the machine's namespace, where the test range
does not exist; it asks an agent living on a host (the ``client`` host, an API
host, a worker...) to make requests from there. One JSON object per line in,
one per line out. Kept to the standard library plus httpx so that it starts
fast with the app's interpreter.
"""

from __future__ import annotations

import json
import socket
import sys
import time
from typing import Any

import httpx


def http(client: httpx.Client, request: dict[str, Any]) -> dict[str, Any]:
    started = time.monotonic()
    try:
        response = client.request(
            request["method"], request["url"], json=request.get("json"),
            params=request.get("params"), headers=request.get("headers"),
            timeout=request.get("timeout", 30),
        )
    except httpx.HTTPError as error:
        return {"status": None, "error": repr(error), "seconds": time.monotonic() - started}
    body: Any
    text = ""
    try:
        body = response.json()
    except ValueError:
        body = None
        text = response.text[:100_000] if response.encoding or "text" in response.headers.get(
            "content-type", "") else ""
    return {"status": response.status_code, "body": body, "text": text,
            "size": len(response.content), "seconds": time.monotonic() - started}


def connect(request: dict[str, Any]) -> dict[str, Any]:
    try:
        with socket.create_connection((request["host"], request["port"]),
                                      timeout=request.get("timeout", 2)):
            return {"ok": True}
    except OSError as error:
        return {"ok": False, "error": repr(error)}


def main() -> None:
    with httpx.Client() as client:
        for line in sys.stdin:
            request = json.loads(line)
            answer = connect(request) if request["op"] == "connect" else http(client, request)
            sys.stdout.write(json.dumps(answer) + "\n")
            sys.stdout.flush()


if __name__ == "__main__":
    main()
