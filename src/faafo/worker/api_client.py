"""The worker's side of the API: claim, heartbeat, deliver, report, with endpoint failover.

``endpoint_url`` may list several API addresses (or one load balancer): a
call that cannot connect, or gets a 5xx, 408 or 429 (honouring
``Retry-After``), moves on to the next address and keeps retrying with
back-off until its deadline. Only then does the worker give the message back
to the queue; it never acknowledges an unconfirmed result (the original's
fatal flaw). Only a 2xx answer with the JSON a faafo API gives counts as an
answer: a redirect or an HTML page (a wrong endpoint) is retried the same way.
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


AUTH_STATUSES = (401, 403)
FAILURE_REPORT_CHUNK = 500
MAX_RETRY_AFTER_SECONDS = 30.0


class ApiUnavailable(Exception):
    """No endpoint confirmed the call before its deadline."""


class ApiRejected(Exception):
    """The API answered 4xx: retrying the same call cannot help.

    Except 401/403 (:data:`AUTH_STATUSES`): those say nothing about the call
    but that this worker's token is wrong, which retrying cannot fix either,
    yet the message is not to blame.
    """

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
        connect_timeout: float = 5.0,
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
        self._token = token or ""
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        # A large upload may take a while to answer, but an API that does not even
        # accept the connection (host unplugged) should be failed over quickly.
        self._http = httpx.Client(
            timeout=httpx.Timeout(timeout, connect=connect_timeout), headers=headers
        )

    def close(self) -> None:
        self._http.close()

    def _call(
        self,
        method: str,
        path: str,
        deadline: float | None = None,
        raw: bool = False,
        expect: Callable[[Any], bool] | None = None,
        **kwargs: Any,
    ) -> Any:
        """One API call, retried over every endpoint with back-off until ``deadline``.

        Only a 2xx answer is success, and only with a body of the expected form
        (JSON, and ``expect(body)`` when given). A redirect, an HTML page or a
        JSON of another shape means the address is not (or not only) a faafo
        API -- a wrong endpoint, a captive proxy -- so it is retried like an
        unreachable API rather than taken as an answer.
        """
        deadline = deadline if deadline is not None else time.monotonic() + self.retry_seconds
        delay = 0.2
        last_error = "no attempt"
        while True:
            wait = 0.0
            for _ in range(len(self.endpoints)):
                base = self.endpoints[self._current]
                try:
                    response = self._http.request(method, base + path, **kwargs)
                except httpx.HTTPError as error:
                    last_error = f"{base}: {error.__class__.__name__}: {error}"
                else:
                    status = response.status_code
                    if 200 <= status < 300:
                        answer, problem = _answer(response, raw, expect)
                        if not problem:
                            return answer
                        last_error = f"{base}: {problem}"
                    elif 300 <= status < 400:
                        where = response.headers.get("location", "elsewhere")
                        last_error = (
                            f"{base}: HTTP {status} redirects to {where} "
                            "(is the endpoint URL that of a faafo API?)"
                        )
                    elif status < 500 and status not in (408, 429):
                        raise ApiRejected(status, self._scrub(_message(response)))
                    else:
                        last_error = f"{base}: HTTP {status}"
                        wait = max(wait, _retry_after(response))
                self._current = (self._current + 1) % len(self.endpoints)
            delay = max(delay, wait)
            if time.monotonic() + delay > deadline:
                raise ApiUnavailable(last_error)
            log.warning(
                "API call %s %s failed (%s); retrying in %.1fs", method, path, last_error, delay
            )
            self._sleep(delay)
            delay = min(delay * 2, 5.0)

    def _scrub(self, text: str) -> str:
        """Whatever a server answered, without our token (an echo server would show it)."""
        return text.replace(self._token, "***") if self._token else text

    def claim(self, uuids: list[str]) -> list[dict]:
        """Mark the tasks running for this worker; one answer per uuid (render or why not)."""
        return self._call(
            "POST",
            "/v1/worker/claim",
            expect=_is_claim_list,
            json={"worker": self.worker, "uuids": uuids},
        )

    def release(self, uuids: list[str], seconds: float = 5.0) -> int:
        """Give back claimed tasks this worker will not finish; the attempt is not counted.

        Used when the worker stops (or cannot reach the API to deliver) and puts
        the message back on the queue: a graceful give-back is no failure of
        the task. Bounded by ``seconds``, since the message goes back either way.
        """
        answer = self._call(
            "POST",
            "/v1/worker/release",
            deadline=time.monotonic() + seconds,
            expect=lambda body: isinstance(body, dict),
            json={"worker": self.worker, "uuids": uuids},
        )
        return int(answer.get("released", 0))

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
            expect=_is_claim,
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
            expect=lambda body: isinstance(body, dict) and "result" in body,
            params=params,
            content=delivery.png,
            headers={"content-type": "image/png"},
        )

    def fetch_band(self, uuid: str, band: int) -> bytes:
        return self._call("GET", f"/v1/worker/bands/{uuid}/{band}", raw=True)

    def report_failures(self, failures: dict[str, str]) -> list[str]:
        """Mark tasks failed with their reasons; returns the uuids the API refused to take.

        Sent in parts of :data:`FAILURE_REPORT_CHUNK`. A part refused as a whole
        (too large, one malformed uuid) is sent again one task at a time, so one
        bad entry cannot keep the others from being failed. A refusal that says
        nothing about the entries (401/403: this worker's token) is raised.
        """
        items = [
            {"uuid": uuid, "error": error[:2000], "worker": self.worker}
            for uuid, error in failures.items()
        ]
        refused: list[str] = []
        for start in range(0, len(items), FAILURE_REPORT_CHUNK):
            part = items[start : start + FAILURE_REPORT_CHUNK]
            try:
                self._report(part)
            except ApiRejected as error:
                if error.status in AUTH_STATUSES:
                    raise
                if len(part) == 1:
                    refused.append(part[0]["uuid"])
                    continue
                for item in part:
                    try:
                        self._report([item])
                    except ApiRejected as alone:
                        if alone.status in AUTH_STATUSES:
                            raise
                        refused.append(item["uuid"])
        return refused

    def _report(self, items: list[dict]) -> None:
        self._call(
            "POST",
            "/v1/worker/failures",
            expect=lambda body: isinstance(body, dict),
            json=items,
        )

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
        return self._call(
            "POST",
            "/v1/worker/results",
            expect=lambda body: isinstance(body, dict),
            files=files,
        )


def _answer(
    response: httpx.Response, raw: bool, expect: Callable[[Any], bool] | None
) -> tuple[Any, str]:
    """The body of a 2xx answer, or why it is not one a faafo API would give."""
    if raw:
        return response.content, ""
    try:
        body = response.json()
    except (ValueError, RecursionError):
        kind = response.headers.get("content-type", "no content type")
        return None, (
            f"HTTP {response.status_code} with a body that is not JSON ({kind}): "
            "is the endpoint URL that of a faafo API?"
        )
    if expect is not None and not expect(body):
        return None, f"HTTP {response.status_code} with an unexpected JSON answer: not a faafo API?"
    return body, ""


def _is_claim(body: Any) -> bool:
    return (
        isinstance(body, dict)
        and isinstance(body.get("uuid"), str)
        and isinstance(body.get("render"), bool)
    )


def _is_claim_list(body: Any) -> bool:
    return isinstance(body, list) and all(_is_claim(item) for item in body)


def _retry_after(response: httpx.Response) -> float:
    """Seconds a 429 or 503 asks us to wait (``Retry-After``), within reason; 0 if none."""
    try:
        seconds = float(response.headers.get("retry-after", "0"))
    except ValueError:
        return 0.0
    return min(max(seconds, 0.0), MAX_RETRY_AFTER_SECONDS)


def _message(response: httpx.Response) -> str:
    """The API's one-line reason (its JSON ``message``), or the start of whatever came."""
    try:
        body = response.json()
    except (ValueError, RecursionError):
        return response.text[:200]
    if isinstance(body, dict) and "message" in body:
        return str(body["message"])[:500]
    return response.text[:200]
