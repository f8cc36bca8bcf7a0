"""Scenario 2.4: restart PostgreSQL during a run.

The database is this test's own cluster (``initdb`` + ``pg_ctl`` on a free
port). While it is down, every API route that needs it answers 503 with
``Retry-After`` -- never a 500, never a hang -- and once it is back the same
API process serves again without being restarted (pooled connections are
tested before use). Workers keep their messages and retry their calls, so
every task still ends done, once.
"""

from __future__ import annotations

import time
import uuid as uuidlib
from datetime import UTC, datetime

import httpx
import pytest

from faafo.config import embedded_transport_url
from support.faults import (
    FaultCluster,
    StatusRecorder,
    assert_done_once,
    count_done,
    small_task,
    wait_finished,
)
from support.own_servers import OwnPostgres
from support.processes import wait_until

pytestmark = [pytest.mark.slow, pytest.mark.servers]

# A deep Mandelbrot zoom where nearly every pixel runs all its iterations: about
# 0.25 s on one thread of an idle 2-core machine, so 80 of them keep two workers
# busy for ten seconds or more and the database stops in the middle of the run.
TASK = {
    "width": 400,
    "height": 400,
    "iterations": 10_000,
    "kind": "mandelbrot",
    "xa": -0.75,
    "xb": -0.74,
    "ya": 0.1,
    "yb": 0.11,
}


@pytest.fixture
def postgres():
    cluster = OwnPostgres()
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.cleanup()


def test_postgresql_restart_503_then_recovers_by_itself(tmp_path, postgres):
    data = tmp_path / "data"
    cluster = FaultCluster(
        postgres.url,
        embedded_transport_url(data),
        tmp_path,
        data,
        extra_api_args=["--publish-grace-seconds", "2", "--reconcile-interval", "1"],
    )
    try:
        url = cluster.start_api()
        for name in ("w1", "w2"):
            cluster.start_worker(name, "--render-threads", "1")
        batch, during = str(uuidlib.uuid4()), str(uuidlib.uuid4())
        with cluster.client() as client:
            uuids = [
                r["uuid"]
                for r in client.create(
                    [small_task(batch, i, **{**TASK, "yb": 0.11 + i / 1e4}) for i in range(80)]
                )
            ]
            wait_until(lambda: count_done(client, batch) >= 10, 60, message="10 tasks done")
        done_uuid = next(
            r["uuid"]
            for r in httpx.get(f"{url}/v1/fractal", params={"status": "done"}).json()["objects"]
        )
        probe = {"worker": "probe", "uuids": [str(uuidlib.uuid4())]}
        recorder = StatusRecorder(
            url,
            [
                ("GET", "/v1/fractal", {"params": {"batch": batch}}),
                ("GET", f"/v1/fractal/{uuids[0]}", {}),
                ("GET", f"/v1/batch/{batch}", {}),
                ("GET", f"/fractal/{done_uuid}", {}),
                ("GET", f"/fractal/{done_uuid}/thumbnail", {}),
                ("POST", "/v1/fractal", {"json": small_task(during, 0)}),
                # An unknown uuid: claiming a real task would itself use up its attempts.
                ("POST", "/v1/worker/claim", {"json": probe}),
                ("POST", "/v1/worker/heartbeat", {"json": probe}),
                ("GET", "/", {}),
                ("GET", "/v1/stats", {}),
                ("GET", "/metrics", {}),
                ("GET", "/readyz", {}),
                ("GET", "/healthz", {}),
            ],
        ).start()
        time.sleep(1)
        api_pid = cluster.apis[0].process.pid  # type: ignore[union-attr]
        with cluster.client() as client:
            before_stop = client.batch(batch)["counts"]
        postgres.stop("fast")
        stopped_at = datetime.now(UTC)
        left = before_stop.get("queued", 0) + before_stop.get("running", 0)
        assert left > 0, f"the run had ended before the database stopped: {before_stop}"
        time.sleep(5)
        down = dict(recorder.seen)
        postgres.start()
        back_at = time.monotonic()
        wait_until(
            lambda: httpx.get(f"{url}/v1/fractal/{uuids[0]}", timeout=10).status_code == 200,
            60,
            interval=0.1,
            message="the API serving again",
        )
        recovered_after = time.monotonic() - back_at
        time.sleep(1)
        recorder.stop()

        unavailable = {key for key, n in down.items() if key[2] == 503}
        for method, path in (
            ("GET", f"/v1/fractal/{uuids[0]}"),
            ("POST", "/v1/fractal"),
            ("POST", "/v1/worker/claim"),
            ("GET", "/readyz"),
        ):
            assert (method, path, 503) in unavailable, f"{method} {path} never said 503: {down}"
        assert ("GET", "/healthz", 200) in down, "liveness does not depend on the database"
        bad = recorder.bad()
        assert not bad, (
            "answers other than 2xx/4xx/503 while the database restarted: "
            + str({key: recorder.samples[key] for key in bad})
            + "\n"
            + cluster.logs()
        )
        assert cluster.apis[0].alive() and cluster.apis[0].process.pid == api_pid  # type: ignore[union-attr]

        with cluster.client() as client:
            wait_finished(client, batch, 80, timeout=120, logs=cluster.logs)
            # Tasks the probe created before and after the outage (those refused
            # with 503 were never stored): all done too.
            extra = [r["uuid"] for r in client.iter_all(batch=during)]
            if extra:
                wait_finished(client, during, len(extra), timeout=60, logs=cluster.logs)
        assert all(w.alive() for w in cluster.workers)
        records = assert_done_once(url, uuids + extra, database_url=postgres.url)
        finished_later = [
            r
            for r in records[: len(uuids)]
            if datetime.fromisoformat(r["finished_at"]) > stopped_at
        ]
        assert finished_later, "no task of the run was still unfinished when the database stopped"
        print(
            f"serving again {recovered_after:.2f}s after PostgreSQL came back; "
            f"statuses while down: {sorted(set(k[2] for k in down), key=str)}"
        )
    finally:
        cluster.stop()
