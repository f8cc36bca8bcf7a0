"""A small typed client for the faafo API, used by the CLI and by tests.

Every failure becomes :class:`ClientError` with one readable sentence: an
unreachable endpoint, a 404, a 422 with the API's own message.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx


class ClientError(Exception):
    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class FaafoClient:
    def __init__(
        self, endpoint_url: str, *, timeout: float = 30.0, token: str | None = None
    ) -> None:
        self.endpoint_url = endpoint_url.rstrip("/")
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        try:
            self._http = httpx.Client(base_url=self.endpoint_url, timeout=timeout, headers=headers)
        except (httpx.InvalidURL, ValueError) as error:
            raise ClientError(f"bad endpoint URL {endpoint_url!r}: {error}") from None

    def __enter__(self) -> FaafoClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.TimeoutException:
            raise ClientError(
                f"the faafo API at {self.endpoint_url} did not answer in time"
            ) from None
        except httpx.HTTPError as error:
            raise ClientError(
                f"cannot reach the faafo API at {self.endpoint_url} ({error.__class__.__name__})"
            ) from None
        if response.status_code >= 400:
            raise ClientError(_error_message(response), response.status_code)
        return response

    # -- fractals -------------------------------------------------------------

    def create(self, tasks: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Create tasks in one request (an array body); returns their records."""
        body = self._request("POST", "/v1/fractal", json=tasks).json()
        return body["objects"]

    def create_one(self, task: dict[str, Any]) -> dict[str, Any]:
        return self._request("POST", "/v1/fractal", json=task).json()

    def get(self, uuid: str) -> dict[str, Any]:
        return self._request("GET", f"/v1/fractal/{uuid}").json()

    def delete(self, uuid: str) -> None:
        self._request("DELETE", f"/v1/fractal/{uuid}")

    def page(self, page: int = 1, per_page: int = 100, **filters: str) -> dict[str, Any]:
        params = {"page": page, "results_per_page": per_page}
        params.update({k: v for k, v in filters.items() if v})
        return self._request("GET", "/v1/fractal", params=params).json()

    def iter_all(self, **filters: str) -> Iterator[dict[str, Any]]:
        """Every fractal, following all pages."""
        page = 1
        while True:
            body = self.page(page, **filters)
            yield from body["objects"]
            if page >= body["total_pages"]:
                return
            page += 1

    def batch(self, batch: str) -> dict[str, Any]:
        return self._request("GET", f"/v1/batch/{batch}").json()

    def download(self, uuid: str, path: Path, expected_checksum: str | None) -> int:
        """Stream the PNG to ``path``; refuse (and remove) a file whose SHA-256 differs."""
        digest = hashlib.sha256()
        size = 0
        tmp = path.with_name(path.name + ".part")
        try:
            with self._http.stream("GET", f"/fractal/{uuid}") as response:
                if response.status_code >= 400:
                    response.read()
                    raise ClientError(_error_message(response), response.status_code)
                with open(tmp, "wb") as out:
                    for chunk in response.iter_bytes():
                        digest.update(chunk)
                        size += len(chunk)
                        out.write(chunk)
        except httpx.HTTPError as error:
            tmp.unlink(missing_ok=True)
            raise ClientError(
                f"cannot reach the faafo API at {self.endpoint_url} ({error.__class__.__name__})"
            ) from None
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        if expected_checksum and digest.hexdigest() != expected_checksum:
            tmp.unlink(missing_ok=True)
            raise ClientError(f"checksum mismatch for {uuid}: the download is corrupt")
        tmp.replace(path)
        return size


def _error_message(response: httpx.Response) -> str:
    try:
        body = response.json()
        message = body.get("message") or body.get("detail")
    except ValueError:
        message = None
    return str(message or f"HTTP {response.status_code} {response.reason_phrase}")
