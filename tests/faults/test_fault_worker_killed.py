"""Scenario 2.1: ``kill -9`` a worker in the middle of a large render.

The killed worker never acknowledged its message, so the queue gives it to
the surviving worker (RabbitMQ when the TCP connection drops; the embedded
queue when a live consumer finds the dead one's lock file released). The
task's claim is taken over, rendered once more, and stored once.
"""

from __future__ import annotations

import re
import time
import uuid as uuidlib

import pytest

from support.faults import (
    LARGE,
    NOT_BANDED,
    FaultCluster,
    assert_done_once,
    small_task,
    wait_finished,
)
from support.processes import wait_until

pytestmark = pytest.mark.slow


@pytest.fixture(params=["embedded", "rabbitmq"])
def urls(request, tmp_path) -> tuple[str, str]:
    """(database, queue): SQLite + the embedded queue, or PostgreSQL + RabbitMQ."""
    if request.param == "embedded":
        data = tmp_path / "data"
        return f"sqlite:///{data / 'faafo.sqlite3'}", f"embedded://{data / 'queue.sqlite3'}"
    request.applymarker(pytest.mark.servers)
    return request.getfixturevalue("postgres_url"), request.getfixturevalue("rabbitmq_url")


def test_worker_killed_mid_render_is_rendered_once_by_another(tmp_path, urls):
    database_url, transport_url = urls
    cluster = FaultCluster(
        database_url,
        transport_url,
        tmp_path,
        tmp_path / "data",
        # Whole tasks (banded rendering is not the point); a lease long enough
        # that only the queue's redelivery, not the reconciler, can explain recovery.
        extra_api_args=["--band-cost", NOT_BANDED, "--lease-seconds", "120"],
    )
    try:
        url = cluster.start_api()
        workers = {name: cluster.start_worker(name, "--render-threads", "1") for name in "ab"}
        batch = str(uuidlib.uuid4())
        with cluster.client() as client:
            # Both workers consuming (and warmed up) before the large task arrives.
            small = [r["uuid"] for r in client.create([small_task(batch, i) for i in range(6)])]
            wait_until(
                lambda: all(client.get(u)["status"] == "done" for u in small),
                60,
                message="small tasks done",
            )
            large = client.create([{**LARGE, "batch": batch}])[0]["uuid"]
            claimed = re.compile(rf"claimed by (\w+) \(attempt 1\) \[task {large}\]")
            wait_until(
                lambda: claimed.search(cluster.apis[0].tail(400)) is not None,
                60,
                message="the large task claimed",
            )
            holder = claimed.search(cluster.apis[0].tail(400)).group(1)  # type: ignore[union-attr]
            survivor = "b" if holder == "a" else "a"
            time.sleep(1)  # well into a render of several seconds
            assert client.get(large)["status"] == "running", "the large render ended too soon"
            workers[holder].kill()
            killed_at = time.monotonic()
            assert client.get(large)["status"] == "running", "killed after, not during, the render"
            wait_until(
                lambda: client.get(large)["attempts"] == 2,
                30,
                message="the large task claimed again",
            )
            redelivered_after = time.monotonic() - killed_at
            wait_finished(client, batch, 7, timeout=120, logs=cluster.logs)
            record = client.get(large)
        assert record["status"] == "done", cluster.logs()
        assert record["generated_by"] == survivor and record["attempts"] == 2, record
        assert workers[survivor].alive()
        assert_done_once(url, [large, *small], database_url=database_url)
        # RabbitMQ requeues on the dropped connection at once; the embedded
        # queue within its reclaim interval (1 s).
        assert redelivered_after < 10, f"redelivered after {redelivered_after:.1f}s"
        print(f"redelivered {redelivered_after:.2f}s after kill -9 ({transport_url.split(':')[0]})")
    finally:
        cluster.stop()
