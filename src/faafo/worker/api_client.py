"""The worker's side of the API: claim, heartbeat, deliver, report, with endpoint failover.

``endpoint_url`` may list several API addresses (or one load balancer): a
call that cannot connect, or gets a 5xx, moves on to the next address and
keeps retrying with back-off until its deadline. Only then does the worker
give the message back to the queue; it never acknowledges an unconfirmed
result (the original's fatal flaw).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx

log = logging.getLogger(__name__)


class ApiUnavailable(Exception):
    """No endpoint confirmed the call before its deadline."""


class ApiRejected(Exception):
    """The API answered 4xx: retrying the same call cannot help."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{status}: {message}")
        self.status = status


@dataclass(frozen=True)
class Delivery:
    uuid: str
    png: bytes
    checksum: str
    duration: float
    c: complex | None
    thumbnail: bytes | None
    kind: str = "julia"
    render_seconds: float = 0.0
    encode_seconds: float = 0.0


class WorkerApi:
    def __init__(
        self,
        endpoints: list[str],
        worker_name: str,
        *,
        timeout: float = 60.0,
        retry_seconds: float = 120.0,
        token: str | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not endpoints:
            raise ValueError("at least one endpoint URL is needed")
        self.endpoints = [e.rstrip("/") for e in endpoints]
        self.worker = worker_name
        self.retry_seconds = retry_seconds
        self._sleep = sleep
        self._current = 0
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.Client(timeout=timeout, headers=headers)

    def close(self) -> None:
        self._http.close()

    def _call(
        self,
        method: str,
        path: str,
        deadline: float | None = None,
        raw: bool = False,
        **kwargs: Any,
    ) -> Any:
        deadline = deadline if deadline is not None else time.monotonic() + self.retry_seconds
        delay = 0.2
        last_error = "no attempt"
        while True:
            for _ in range(len(self.endpoints)):
                base = self.endpoints[self._current]
                try:
                    response = self._http.request(method, base + path, **kwargs)
                except httpx.HTTPError as error:
                    last_error = f"{base}: {error.__class__.__name__}: {error}"
                else:
                    if response.status_code < 400:
                        return response.content if raw else response.json()
                    if response.status_code < 500 and response.status_code not in (408, 429):
                        raise ApiRejected(response.status_code, _message(response))
                    last_error = f"{base}: HTTP {response.status_code}"
                self._current = (self._current + 1) % len(self.endpoints)
            if time.monotonic() + delay > deadline:
                raise ApiUnavailable(last_error)
            log.warning(
                "API call %s %s failed (%s); retrying in %.1fs", method, path, last_error, delay
            )
            self._sleep(delay)
            delay = min(delay * 2, 5.0)

    def claim(self, uuids: list[str]) -> list[dict]:
        return self._call("POST", "/v1/worker/claim", json={"worker": self.worker, "uuids": uuids})

    def heartbeat(self, uuids: list[str]) -> None:
        self._call(
            "POST",
            "/v1/worker/heartbeat",
            deadline=time.monotonic() + 5,
            json={"worker": self.worker, "uuids": uuids},
        )

    def claim_band(self, uuid: str, band: int) -> dict:
        return self._call(
            "POST",
            "/v1/worker/bands/claim",
            json={"worker": self.worker, "uuid": uuid, "band": band},
        )

    def deliver_band(self, uuid: str, band: int, delivery: Delivery) -> dict:
        params = {
            "checksum": delivery.checksum,
            "duration": delivery.duration,
            "generated_by": self.worker,
        }
        return self._call(
            "PUT",
            f"/v1/worker/bands/{uuid}/{band}",
            params=params,
            content=delivery.png,
            headers={"content-type": "image/png"},
        )

    def fetch_band(self, uuid: str, band: int) -> bytes:
        return self._call("GET", f"/v1/worker/bands/{uuid}/{band}", raw=True)

    def report_failures(self, failures: dict[str, str]) -> None:
        body = [{"uuid": u, "error": e[:2000], "worker": self.worker} for u, e in failures.items()]
        self._call("POST", "/v1/worker/failures", json=body)

    def deliver(self, deliveries: list[Delivery]) -> dict[str, str]:
        """Upload results (raw PNG parts); returns the API's outcome per uuid."""
        meta = [
            {
                "uuid": d.uuid,
                "checksum": d.checksum,
                "duration": d.duration,
                "generated_by": self.worker,
                "c_real": d.c.real if d.c is not None else None,
                "c_imag": d.c.imag if d.c is not None else None,
            }
            for d in deliveries
        ]
        files: list[tuple[str, tuple[str | None, bytes, str]]] = [
            ("meta", (None, json.dumps(meta).encode(), "application/json"))
        ]
        for d in deliveries:
            files.append((d.uuid, (f"{d.uuid}.png", d.png, "image/png")))
            if d.thumbnail:
                files.append(
                    (f"thumbnail:{d.uuid}", (f"{d.uuid}-thumb.png", d.thumbnail, "image/png"))
                )
        return self._call("POST", "/v1/worker/results", files=files)


def _message(response: httpx.Response) -> str:
    try:
        return str(response.json().get("message", response.text))
    except ValueError:
        return response.text[:200]
