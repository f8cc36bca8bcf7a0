"""Shared pieces of the fault-injection tests: a cluster whose API can be killed and
restarted on the same port, task shapes, and the final check every scenario ends with.

The final check is the guarantee itself (README, "What survives what"): every
task is ``done``; its image downloads with the record's checksum and size; the
database holds exactly one image for it; and delivering it again is answered
``duplicate`` and changes nothing.
"""

from __future__ import annotations

import hashlib
import json
import math
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from faafo.client.http import FaafoClient
from faafo.config import embedded_database_url, embedded_transport_url
from support.cluster import Cluster
from support.processes import Service, free_port, wait_http

# A deep Mandelbrot zoom where nearly every pixel runs all its iterations: about
# 4 s on one thread of an idle 2-core machine (2.5 s with two threads; two to
# three times that under load): long enough to kill a worker in the middle of
# it, short enough for CI.
LARGE = {
    "width": 2000,
    "height": 2000,
    "iterations": 10_000,
    "kind": "mandelbrot",
    "xa": -0.75,
    "xb": -0.74,
    "ya": 0.1,
    "yb": 0.11,
}
NOT_BANDED = str(10**15)  # --band-cost that keeps every task whole


def embedded_urls(data_dir: Path) -> tuple[str, str]:
    """(database, queue) URLs of SQLite and the embedded queue in ``data_dir``, laid
    out as ``faafo up`` lays them out."""
    return embedded_database_url(data_dir), embedded_transport_url(data_dir)


def small_task(batch: str, index: int = 0, **extra: object) -> dict:
    """A task that renders in milliseconds; sizes vary so images differ."""
    return {
        "width": 40 + index % 17,
        "height": 32 + index % 5,
        "iterations": 64,
        "xa": -1.6,
        "xb": 1.6,
        "ya": -1.0,
        "yb": 1.0,
        "batch": batch,
        **extra,
    }


@dataclass
class FaultCluster(Cluster):
    """A :class:`Cluster` whose API processes can be killed and started again in place."""

    api_env: dict[str, str] = field(default_factory=dict)

    def start_api(self, port: int | None = None, wait: bool = True) -> str:  # type: ignore[override]
        port = port or free_port()
        name = f"api-{len(self.apis) + 1}"
        api = Service(
            name,
            "faafo.api.main",
            [
                *self.common(),
                "--listen-address",
                "127.0.0.1",
                "--bind-port",
                str(port),
                *self.extra_api_args,
            ],
            self.log_dir,
            env=self.api_env,
        )
        api.start()
        self.apis.append(api)
        if port not in self.ports:
            self.ports.append(port)
        url = f"http://127.0.0.1:{port}"
        if wait:
            wait_http(url + "/readyz", services=[api])
        return url

    def restart_api(self, port: int, *extra: str) -> str:
        """A fresh API process on ``port`` (after a kill), same settings plus ``extra``."""
        saved = self.extra_api_args
        self.extra_api_args = [*saved, *extra]
        try:
            return self.start_api(port)
        finally:
            self.extra_api_args = saved

    @property
    def live_apis(self) -> list[Service]:
        return [api for api in self.apis if api.alive()]


def wait_finished(
    client: FaafoClient,
    batch: str,
    total: int,
    timeout: float,
    logs: Callable[[], str] = lambda: "",
) -> dict:
    """Until every task of ``batch`` is done or failed; the last status either way."""
    deadline = time.monotonic() + timeout
    status: dict = {}
    last_error = ""
    while time.monotonic() < deadline:
        try:
            status = client.batch(batch)
            if status["finished"] and status["total"] == total:
                return status
        except Exception as error:  # the API may be down in the middle of a scenario
            last_error = repr(error)
        time.sleep(0.25)
    raise AssertionError(
        f"batch {batch} not finished after {timeout}s: {status} {last_error}\n{logs()}"
    )


def count_done(client: FaafoClient, batch: str) -> int:
    """Done tasks of ``batch``; 0 while the batch is unknown or the API is down."""
    try:
        return client.batch(batch)["counts"].get("done", 0)
    except Exception:
        return 0


def batch_total(client: FaafoClient, batch: str) -> int:
    """Tasks of ``batch`` the database has; 0 while it has none or the API is down."""
    try:
        return client.batch(batch)["total"]
    except Exception:
        return 0


def assert_done_once(
    endpoint: str,
    uuids: Iterable[str],
    *,
    database_url: str | None = None,
    worker_token: str | None = None,
    redeliver: bool = True,
) -> list[dict]:
    """The guarantee, checked for every task; all problems are listed, not just the first.

    * the task is ``done``, with no error;
    * ``GET /fractal/<uuid>`` is the image whose SHA-256 is the record's
      checksum and whose length is the record's ``size`` (one image, not two
      concatenated or a torn one);
    * with ``database_url``: the stored chunks add up to exactly that image;
    * with ``redeliver``: uploading the same result again through the worker
      API (what the worker of a redelivered message does) is answered
      ``duplicate`` and leaves the record as it was.
    """
    uuids = list(uuids)
    problems: list[str] = []
    records: list[dict] = []
    headers = {"Authorization": f"Bearer {worker_token}"} if worker_token else {}
    with httpx.Client(base_url=endpoint, timeout=60) as http:
        for uuid in uuids:
            record = http.get(f"/v1/fractal/{uuid}").json()
            records.append(record)
            if record.get("status") != "done" or record.get("error"):
                problems.append(f"{uuid}: {record.get('status')} ({record.get('error')})")
                continue
            image = http.get(f"/fractal/{uuid}")
            digest = hashlib.sha256(image.content).hexdigest()
            if image.status_code != 200 or digest != record["checksum"]:
                problems.append(
                    f"{uuid}: image {image.status_code}, checksum {digest} "
                    f"!= record {record['checksum']}"
                )
                continue
            if len(image.content) != record["size"]:
                problems.append(f"{uuid}: {len(image.content)} bytes != size {record['size']}")
                continue
            if redeliver:
                # What the worker of a redelivered message does: the same upload again.
                meta = [
                    {
                        "uuid": uuid,
                        "checksum": digest,
                        "duration": 0.001,
                        "generated_by": "fault-test-redelivery",
                    }
                ]
                again = http.post(
                    "/v1/worker/results",
                    headers=headers,
                    files=[
                        ("meta", (None, json.dumps(meta).encode(), "application/json")),
                        (uuid, (f"{uuid}.png", image.content, "image/png")),
                    ],
                )
                answer = again.json() if again.status_code == 200 else again.text
                if again.status_code != 200 or answer.get(uuid) != "duplicate":
                    problems.append(
                        f"{uuid}: second delivery answered {again.status_code} {answer}"
                    )
                after = http.get(f"/v1/fractal/{uuid}").json()
                changed = {
                    key: (record[key], after[key])
                    for key in ("checksum", "size", "generated_by", "finished_at", "status")
                    if record[key] != after[key]
                }
                if changed:
                    problems.append(f"{uuid}: a second delivery changed {changed}")
    if database_url:
        problems += _stored_images_problems(database_url, {r["uuid"]: r for r in records})
    assert not problems, f"{len(problems)} of {len(uuids)} task(s) break the guarantee:\n" + (
        "\n".join(problems[:40])
    )
    return records


def _stored_images_problems(database_url: str, records: dict[str, dict]) -> list[str]:
    """Chunks per task straight from the database: exactly one image's worth each."""
    from sqlalchemy import create_engine, func, select

    from faafo.store.models import CHUNK_SIZE, ImageChunk

    engine = create_engine(database_url)
    try:
        with engine.connect() as connection:
            rows = connection.execute(
                select(
                    ImageChunk.fractal_uuid,
                    func.count(),
                    func.sum(func.length(ImageChunk.data)),
                    func.max(ImageChunk.seq),
                ).group_by(ImageChunk.fractal_uuid)
            ).all()
    finally:
        engine.dispose()
    stored = {uuid: (n, int(total or 0), top) for uuid, n, total, top in rows}
    problems = []
    for uuid, record in records.items():
        if record.get("status") != "done":
            continue
        n, total, top = stored.get(uuid, (0, 0, None))
        expected = max(1, math.ceil(record["size"] / CHUNK_SIZE))
        if (n, total, top) != (expected, record["size"], expected - 1):
            problems.append(
                f"{uuid}: database holds {n} chunk(s), {total} bytes, last seq {top}; "
                f"expected {expected} chunk(s) of {record['size']} bytes"
            )
    return problems


@dataclass
class StatusRecorder:
    """Polls a few API routes in a thread and counts the HTTP statuses each answers.

    Used while a server is down: the API may answer 503, never 500, and
    must not hang (a request that takes longer than ``timeout`` counts as
    ``"timeout"``).
    """

    endpoint: str
    requests: list[tuple[str, str, dict]]
    timeout: float = 15.0
    seen: Counter = field(default_factory=Counter)
    samples: dict[tuple[str, str, object], str] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> StatusRecorder:
        self._thread = threading.Thread(target=self._run, name="status-recorder", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        with httpx.Client(base_url=self.endpoint, timeout=self.timeout) as http:
            while not self._stop.is_set():
                for method, path, kwargs in self.requests:
                    try:
                        response = http.request(method, path, **kwargs)
                        status: object = response.status_code
                        sample = response.text[:300]
                    except httpx.TimeoutException:
                        status, sample = "timeout", ""
                    except httpx.HTTPError as error:
                        status, sample = f"connection: {error.__class__.__name__}", ""
                    self.seen[(method, path, status)] += 1
                    self.samples.setdefault((method, path, status), sample)
                self._stop.wait(0.05)

    def stop(self) -> Counter:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.timeout + 5)
        return self.seen

    def bad(self) -> dict:
        """Anything but 2xx/4xx/503: a 500, a hang, a refused connection."""
        return {
            key: n
            for key, n in self.seen.items()
            if not (isinstance(key[2], int) and (key[2] < 500 or key[2] == 503))
        }


def read_tokens(data_dir: Path) -> dict[str, str]:
    """The tokens ``faafo up`` generated for this data directory."""
    return json.loads((data_dir / "tokens.json").read_text())
