"""Limits (issue 5, points 3 and 5): pixels per task, iterations, tasks per request,
request and upload body sizes -- all set here by flags, all enforced with a
422 or 413 that says which limit and by how much, and before the API holds
anything large in memory.

One API process serves the whole module, with small limits so the tests stay
cheap; its peak resident memory (``VmHWM``) shows whether a refused body was
read first.
"""

from __future__ import annotations

import contextlib
import json
import socket
import time
import uuid as uuidlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from support.faults import small_task
from support.processes import Service, start_api

MAX_PIXELS = 250_000
MAX_ITERATIONS = 2_000
MAX_TASKS = 50
MAX_REQUEST = 64 * 1024
MAX_UPLOAD = 1024 * 1024
MiB = 1024 * 1024


@dataclass
class Api:
    url: str
    port: int
    service: Service

    def peak_rss(self) -> int:
        """Peak resident memory of the API process so far, in bytes (Linux)."""
        status = Path(f"/proc/{self.service.process.pid}/status").read_text()  # type: ignore[union-attr]
        kib = next(line.split()[1] for line in status.splitlines() if line.startswith("VmHWM:"))
        return int(kib) * 1024


@pytest.fixture(scope="module")
def api(tmp_path_factory) -> Iterator[Api]:
    base = tmp_path_factory.mktemp("limits")
    service, port, url = start_api(
        "api-limits",
        base,
        "--max-pixels",
        str(MAX_PIXELS),
        "--max-iterations",
        str(MAX_ITERATIONS),
        "--max-tasks-per-request",
        str(MAX_TASKS),
        "--max-request-bytes",
        str(MAX_REQUEST),
        "--max-upload-bytes",
        str(MAX_UPLOAD),
    )
    try:
        yield Api(url, port, service)
    finally:
        service.stop()


def task(**fields: object) -> dict:
    base = small_task("limits", 0)
    base.pop("batch")
    return {**base, **fields}


# -- task limits --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "words"),
    [
        (task(width=501, height=500), ["501x500", "250500 pixels", f"limit is {MAX_PIXELS}"]),
        (task(width=100_000, height=100_000), ["10000000000 pixels", "limit"]),
        (task(width=10**30, height=10**30), ["pixels", "limit"]),
        (task(width=2**63, height=1), ["pixels", "limit"]),
        (task(iterations=MAX_ITERATIONS + 1), ["iterations 2001", f"limit {MAX_ITERATIONS}"]),
        (task(iterations=10**20), ["iterations", "limit"]),
        ([task()] * (MAX_TASKS + 1), [f"{MAX_TASKS + 1} tasks", f"limit is {MAX_TASKS}"]),
        ([task(), task(width=600, height=600)], ["task 1", "360000 pixels"]),
        ([], ["no tasks"]),
        (task(width=0), ["width", "greater than or equal to 1"]),
        (task(height=-3), ["height"]),
        (task(xa=-1e10), ["xa", "greater than or equal to"]),
        (task(xa=1.0, xb=1.0), ["xa and xb must differ"]),
        (task(seed=2**64), ["seed"]),
        (task(kind="quaternion"), ["kind must be one of"]),
        (task(uuid="not-a-uuid"), ["uuid"]),
        (task(batch="b" * 37), ["batch"]),
    ],
    ids=[
        "pixels-over-by-500",
        "pixels-10e10",
        "pixels-10e60",
        "width-2e63",
        "iterations-over-by-1",
        "iterations-10e20",
        "tasks-over-by-1",
        "second-task-too-big",
        "empty-array",
        "width-0",
        "height-negative",
        "xa-out-of-range",
        "xa-equals-xb",
        "seed-2e64",
        "unknown-kind",
        "bad-uuid",
        "batch-too-long",
    ],
)
def test_task_limits_are_422_with_a_clear_message(api, body, words):
    started = time.monotonic()
    response = httpx.post(f"{api.url}/v1/fractal", json=body, timeout=30)
    assert response.status_code == 422, response.text
    problem = response.json()
    assert problem["code"] == 422 and isinstance(problem["message"], str)
    for word in words:
        assert word in problem["message"], problem["message"]
    assert time.monotonic() - started < 5, "refused without rendering or allocating anything"


def test_limits_themselves_are_allowed(api):
    at_limit = [task(width=500, height=500, iterations=MAX_ITERATIONS)] * MAX_TASKS
    response = httpx.post(f"{api.url}/v1/fractal", json=at_limit, timeout=30)
    assert response.status_code == 201, response.text
    assert response.json()["num_results"] == MAX_TASKS


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "1e999"])
def test_non_finite_numbers_are_refused(api, literal):
    raw = json.dumps(task()).replace('"xa": -1.6', f'"xa": {literal}')
    assert literal in raw
    response = httpx.post(
        f"{api.url}/v1/fractal", content=raw, headers={"content-type": "application/json"}
    )
    assert response.status_code in (400, 422), response.text
    assert response.json()["message"]


# -- body sizes ---------------------------------------------------------------------


def raw_request(
    port: int,
    head: str,
    parts: Iterator[bytes],
    timeout: float = 30,
) -> tuple[int, bytes, int]:
    """Send a request by hand (declared lengths may lie); stop sending once answered.

    Returns the status, the start of the answer, and how many body bytes went out.
    """
    sent = 0
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(head.encode() + b"\r\n")
        sock.setblocking(False)
        answer = b""
        try:
            for part in parts:
                view = memoryview(part)
                while view:
                    with contextlib.suppress(BlockingIOError):
                        answer += sock.recv(65536)
                    if answer:
                        break
                    try:
                        n = sock.send(view)
                    except BlockingIOError:
                        time.sleep(0.001)
                        continue
                    view = view[n:]
                    sent += n
                if answer:
                    break
        except (BrokenPipeError, ConnectionResetError):
            pass
        sock.setblocking(True)
        sock.settimeout(timeout)
        while b"\r\n\r\n" not in answer:
            more = sock.recv(65536)
            if not more:
                break
            answer += more
    status = int(answer.split(b" ", 2)[1]) if answer.startswith(b"HTTP/") else 0
    return status, answer, sent


def chunked(total: int, piece: bytes = b"x" * MiB) -> Iterator[bytes]:
    """``total`` bytes (at least) in HTTP chunks, made as they are sent."""
    sent = 0
    while sent < total:
        yield f"{len(piece):x}\r\n".encode() + piece + b"\r\n"
        sent += len(piece)
    yield b"0\r\n\r\n"


def head(method: str, path: str, content_type: str, length: int | None) -> str:
    framing = "Transfer-Encoding: chunked" if length is None else f"Content-Length: {length}"
    return (
        f"{method} {path} HTTP/1.1\r\nHost: faafo\r\nContent-Type: {content_type}\r\n{framing}\r\n"
    )


def test_json_body_over_the_limit_is_413(api):
    body = [task(batch=str(i)) for i in range(MAX_TASKS)]
    padded = json.dumps(body) + " " * MAX_REQUEST
    response = httpx.post(
        f"{api.url}/v1/fractal", content=padded, headers={"content-type": "application/json"}
    )
    assert response.status_code == 413, response.text
    assert str(MAX_REQUEST) in response.json()["message"]


def test_declared_huge_body_is_refused_before_reading_it(api):
    started = time.monotonic()
    status, answer, _ = raw_request(
        api.port, head("POST", "/v1/fractal", "application/json", 10**12), iter([b"[{"])
    )
    assert status == 413, answer
    assert time.monotonic() - started < 5
    assert b"exceeds the limit" in answer or b"413" in answer


@pytest.mark.parametrize(
    ("method", "path", "content_type", "limit"),
    [
        ("POST", "/v1/fractal", "application/json", MAX_REQUEST),
        (
            "PUT",
            "/v1/fractal/{uuid}?checksum=" + "0" * 64 + "&duration=1&generated_by=w",
            "image/png",
            MAX_UPLOAD,
        ),
    ],
    ids=["create", "upload"],
)
def test_streamed_body_over_the_limit_is_cut_off_without_growing_memory(
    api, method, path, content_type, limit
):
    uuid = httpx.post(f"{api.url}/v1/fractal", json=task()).json()["uuid"]
    before = api.peak_rss()
    status, answer, sent = raw_request(
        api.port, head(method, path.format(uuid=uuid), content_type, None), chunked(256 * MiB)
    )
    assert status == 413, answer[:300]
    grown = api.peak_rss() - before
    assert grown < 32 * MiB, f"peak memory grew by {grown / MiB:.0f} MiB for a refused body"
    assert sent < 128 * MiB, f"{sent / MiB:.0f} MiB were read before refusing"


def test_declared_oversized_uploads_are_413(api):
    uuid = httpx.post(f"{api.url}/v1/fractal", json=task()).json()["uuid"]
    for method, path, content_type in (
        ("PUT", f"/v1/fractal/{uuid}?checksum={'0' * 64}&duration=1&generated_by=w", "image/png"),
        ("POST", "/v1/worker/results", "multipart/form-data; boundary=x"),
        (
            "PUT",
            f"/v1/worker/bands/{uuid}/0?checksum={'0' * 64}&duration=1&generated_by=w",
            "image/png",
        ),
    ):
        status, answer, _ = raw_request(
            api.port, head(method, path, content_type, MAX_UPLOAD + 1), iter([b"\x89PNG"])
        )
        assert status == 413, (path, answer[:300])


def test_worker_json_routes_refuse_oversized_bodies(api):
    before = api.peak_rss()
    body = b'{"worker": "w", "uuids": ["' + b"a" * (8 * MiB) + b'"]}'
    status, answer, _ = raw_request(
        api.port,
        head("POST", "/v1/worker/claim", "application/json", None),
        iter([f"{len(body):x}\r\n".encode() + body + b"\r\n0\r\n\r\n"]),
    )
    grown = api.peak_rss() - before
    assert status == 413, f"{answer[:200]!r}; peak memory grew by {grown / MiB:.0f} MiB"


def test_chunked_multipart_upload_over_the_limit_is_413(api):
    import hashlib

    uuid = httpx.post(f"{api.url}/v1/fractal", json=task()).json()["uuid"]
    png = b"\x89PNG\r\n\x1a\n" + b"\0" * (3 * MiB)  # passes the signature and checksum checks
    meta = [
        {
            "uuid": uuid,
            "checksum": hashlib.sha256(png).hexdigest(),
            "duration": 0.1,
            "generated_by": "oversized",
        }
    ]
    boundary = uuidlib.uuid4().hex
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="meta"\r\n\r\n'
            f"{json.dumps(meta)}\r\n"
            f'--{boundary}\r\nContent-Disposition: form-data; name="{uuid}"; filename="x.png"\r\n'
            "Content-Type: image/png\r\n\r\n"
        ).encode()
        + png
        + f"\r\n--{boundary}--\r\n".encode()
    )
    status, answer, _ = raw_request(
        api.port,
        head("POST", "/v1/worker/results", f"multipart/form-data; boundary={boundary}", None),
        iter([f"{len(body):x}\r\n".encode() + body + b"\r\n0\r\n\r\n"]),
    )
    record = httpx.get(f"{api.url}/v1/fractal/{uuid}").json()
    assert status == 413, (
        f"{answer[:200]!r}; the task is now {record['status']}, {record['size']} bytes"
    )
