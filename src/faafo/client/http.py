"""A small typed client for the faafo API, used by the CLI and by tests.

Every failure becomes :class:`ClientError` with one readable sentence: an
unreachable endpoint, a 404, a 422 with the API's own message, a redirect
(never followed: it would turn a create or a delete into a GET elsewhere),
or an answer that is not the faafo API's JSON (a web server on the wrong
port, a captive portal), so a caller never sees a ``JSONDecodeError``.
"""

from __future__ import annotations

import hashlib
import math
import time
import uuid as uuidlib
from collections.abc import Iterator
from typing import Any, BinaryIO
from urllib.parse import urljoin, urlsplit

import httpx

# What every fractal record has; the CLI's tables read these fields.
RECORD_FIELDS = ("uuid", "width", "height", "iterations", "xa", "xb", "ya", "yb", "status")
# Sent with each create and repeated on its retries, so the API can answer a
# retried request with the original 201 instead of 409 "uuid exists".
IDEMPOTENCY_HEADER = "Idempotency-Key"
CREATE_ATTEMPTS = 3
RETRY_STATUSES = frozenset({502, 503, 504})
MAX_RETRY_WAIT = 5.0
_RETRY_ERRORS = (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError)


class ClientError(Exception):
    """One readable sentence for the user; ``status`` is the HTTP status when there was one."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class FaafoClient:
    """The faafo v1 API over HTTP: create, read, list, delete tasks and download PNGs."""

    def __init__(
        self,
        endpoint_url: str,
        *,
        timeout: float = 30.0,
        token: str | None = None,
        retry_wait: float = 0.5,
    ) -> None:
        self.endpoint_url = endpoint_url.rstrip("/")
        self.retry_wait = retry_wait
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        try:
            self._http = httpx.Client(
                base_url=self.endpoint_url,
                timeout=timeout,
                headers=headers,
                follow_redirects=False,
            )
        except (httpx.InvalidURL, ValueError) as error:
            raise ClientError(f"bad endpoint URL {endpoint_url!r}: {error}") from None

    def __enter__(self) -> FaafoClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    # -- transport --------------------------------------------------------------

    def _request(
        self, method: str, path: str, *, attempts: int = 1, **kwargs: Any
    ) -> httpx.Response:
        """One call, resent unchanged up to ``attempts`` times while the API is unavailable."""
        for attempt in range(1, attempts + 1):
            try:
                response = self._http.request(method, path, **kwargs)
            except _RETRY_ERRORS as error:
                if attempt < attempts:
                    self._pause(attempt, None)
                    continue
                raise self._unreachable(error) from None
            except httpx.HTTPError as error:
                raise self._unreachable(error) from None
            if response.status_code in RETRY_STATUSES and attempt < attempts:
                self._pause(attempt, response)
                continue
            self._check_status(response)
            return response
        raise AssertionError("unreachable: the last attempt returns or raises")

    def _pause(self, attempt: int, response: httpx.Response | None) -> None:
        """Wait before a retry: the API's ``Retry-After`` when it gives one, else back off."""
        wait = self.retry_wait * 2 ** (attempt - 1)
        asked = _seconds(response.headers.get("retry-after")) if response is not None else None
        time.sleep(min(max(wait if asked is None else asked, 0.0), MAX_RETRY_WAIT))

    def _unreachable(self, error: httpx.HTTPError) -> ClientError:
        if isinstance(error, httpx.TimeoutException):
            return ClientError(f"the faafo API at {self.endpoint_url} did not answer in time")
        return ClientError(
            f"cannot reach the faafo API at {self.endpoint_url} ({error.__class__.__name__})"
        )

    def _check_status(self, response: httpx.Response) -> None:
        """Only a 2xx is success; a redirect names where to point the client instead."""
        status = response.status_code
        if 200 <= status < 300:
            return
        if 300 <= status < 400:
            raise ClientError(self._redirect_message(response), status)
        if status >= 400:
            raise ClientError(self._error_message(response), status)
        raise self._not_faafo(response, f"HTTP {status}")

    def _redirect_message(self, response: httpx.Response) -> str:
        location = response.headers.get("location")
        if not location:
            return str(self._not_faafo(response, f"HTTP {response.status_code} with no Location"))
        target = urljoin(str(response.request.url), location)
        parts = urlsplit(target)
        asked = response.request.url.path
        if asked and asked != "/" and parts.path.endswith(asked):
            # The same path under another base (http to https, a new host): use that base.
            base = f"{parts.scheme}://{parts.netloc}{parts.path[: -len(asked)]}"
            return f"{self.endpoint_url} redirected to {base}: use that as --endpoint-url"
        return (
            f"{self.endpoint_url} redirected {asked} to {target}, which a faafo API never does: "
            "check --endpoint-url"
        )

    def _error_message(self, response: httpx.Response) -> str:
        """The API's own ``{"code", "message"}`` sentence, else the status line."""
        try:
            body = response.json()
        except ValueError:
            body = None
        if isinstance(body, dict):
            message = body.get("message") or body.get("detail")
            if isinstance(message, str) and message:
                return message
        return (
            f"the server at {self.endpoint_url} answered HTTP {response.status_code} "
            f"{response.reason_phrase}".rstrip()
        )

    def _not_faafo(self, response: httpx.Response, what: str) -> ClientError:
        request = response.request
        return ClientError(
            f"{self.endpoint_url} is not a faafo API "
            f"({request.method} {request.url.path} answered {what})",
            response.status_code,
        )

    def _json(self, response: httpx.Response) -> Any:
        try:
            return response.json()
        except ValueError:
            kind = response.headers.get("content-type", "").split(";")[0] or "no content type"
            raise self._not_faafo(response, f"{kind}, not JSON") from None

    def _record(self, response: httpx.Response, value: Any) -> dict[str, Any]:
        if isinstance(value, dict) and all(name in value for name in RECORD_FIELDS):
            return value
        raise self._not_faafo(response, "JSON that is not a fractal record")

    def _records(self, response: httpx.Response, body: Any, *extra: str) -> list[dict[str, Any]]:
        """The ``objects`` of a list or batch answer, each checked to be a record."""
        if not (
            isinstance(body, dict)
            and isinstance(body.get("objects"), list)
            and all(name in body for name in extra)
        ):
            raise self._not_faafo(response, "JSON without the expected 'objects'")
        return [self._record(response, row) for row in body["objects"]]

    # -- fractals -------------------------------------------------------------

    def _create(self, body: dict[str, Any] | list[dict[str, Any]]) -> httpx.Response:
        """POST new tasks under a fresh idempotency key that every retry of it repeats."""
        headers = {IDEMPOTENCY_HEADER: str(uuidlib.uuid4())}
        return self._request(
            "POST", "/v1/fractal", json=body, headers=headers, attempts=CREATE_ATTEMPTS
        )

    def create(self, tasks: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Create tasks in one request (an array body); returns their records."""
        response = self._create(tasks)
        return self._records(response, self._json(response))

    def create_one(self, task: dict[str, Any]) -> dict[str, Any]:
        """Create one task (an object body); returns its record."""
        response = self._create(task)
        return self._record(response, self._json(response))

    def get(self, uuid: str) -> dict[str, Any]:
        response = self._request("GET", f"/v1/fractal/{uuid}")
        return self._record(response, self._json(response))

    def delete(self, uuid: str) -> None:
        """Delete one fractal; a 2xx with a page instead of JSON is not a deletion."""
        response = self._request("DELETE", f"/v1/fractal/{uuid}")
        if response.content:
            self._json(response)

    def page(self, page: int = 1, per_page: int = 100, **filters: str | None) -> dict[str, Any]:
        """One page of the listing: ``objects`` (checked records), ``page``, ``total_pages``."""
        params: dict[str, str | int] = {"page": page, "results_per_page": per_page}
        params.update({k: v for k, v in filters.items() if v})
        response = self._request("GET", "/v1/fractal", params=params)
        body = self._json(response)
        objects = self._records(response, body, "total_pages")
        if not isinstance(body["total_pages"], int):
            raise self._not_faafo(response, "JSON whose total_pages is not a number")
        return {**body, "objects": objects}

    def iter_all(self, **filters: str | None) -> Iterator[dict[str, Any]]:
        """Every fractal, following all pages."""
        page = 1
        while True:
            body = self.page(page, **filters)
            yield from body["objects"]
            if page >= body["total_pages"] or not body["objects"]:
                return
            page += 1

    def batch(self, batch: str) -> dict[str, Any]:
        """Progress of a batch: ``total``, ``counts`` by status, ``finished``."""
        response = self._request("GET", f"/v1/batch/{batch}")
        body = self._json(response)
        if not (
            isinstance(body, dict)
            and isinstance(body.get("counts"), dict)
            and isinstance(body.get("finished"), bool)
        ):
            raise self._not_faafo(response, "JSON that is not a batch's progress")
        return body

    def download(self, uuid: str, out: BinaryIO, expected_checksum: str | None) -> int:
        """Stream the PNG into ``out``; its size, or ClientError if its SHA-256 differs.

        The caller owns ``out`` and discards what was written when this raises.
        """
        digest = hashlib.sha256()
        size = 0
        try:
            with self._http.stream("GET", f"/fractal/{uuid}") as response:
                if not 200 <= response.status_code < 300:
                    response.read()
                    self._check_status(response)
                kind = response.headers.get("content-type", "").split(";")[0].strip()
                if kind != "image/png":
                    raise self._not_faafo(response, f"{kind or 'no content type'}, not a PNG")
                for chunk in response.iter_bytes():
                    digest.update(chunk)
                    size += len(chunk)
                    out.write(chunk)
        except httpx.HTTPError as error:
            raise self._unreachable(error) from None
        if expected_checksum and digest.hexdigest() != expected_checksum:
            raise ClientError(f"checksum mismatch for {uuid}: the download is corrupt")
        return size


def _seconds(text: str | None) -> float | None:
    """A ``Retry-After`` in seconds; None for a date, garbage or a non-finite number."""
    try:
        value = float(text) if text is not None else None
    except ValueError:
        return None
    return value if value is not None and math.isfinite(value) else None
