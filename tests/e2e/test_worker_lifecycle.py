"""The worker as a process: graceful stop, no acknowledgement without the API, even spread."""

from __future__ import annotations

import signal
import time
import uuid as uuidlib

import pytest

from support.cluster import Cluster, wait_all_finished
from support.processes import wait_until

# A deep Mandelbrot zoom where nearly every pixel runs all its iterations, so the
# cost is the pixel-iterations: SLOW takes about 2.5 s on one thread of an idle
# 2-core machine (two to three times that under load), long enough to interrupt;
# MEDIUM about 0.5 s, long enough to be seen running.
SLOW = {
    "width": 1200,
    "height": 1200,
    "iterations": 10_000,
    "kind": "mandelbrot",
    "xa": -0.75,
    "xb": -0.74,
    "ya": 0.1,
    "yb": 0.11,
}
MEDIUM = {**SLOW, "width": 600, "height": 600}
# Renders in milliseconds.
TINY = {
    "width": 80,
    "height": 60,
    "iterations": 50,
    "xa": -1.5,
    "xb": 1.5,
    "ya": -1.0,
    "yb": 1.0,
    "c_real": -0.8,
    "c_imag": 0.156,
}


@pytest.fixture
def cluster(tmp_path):
    data = tmp_path / "data"
    # Whole tasks here (banded rendering has its own tests).
    cluster = Cluster(
        f"sqlite:///{data / 'faafo.sqlite3'}",
        f"embedded://{data / 'queue.sqlite3'}",
        tmp_path,
        data,
        extra_api_args=["--band-cost", str(10**15)],
    )
    yield cluster
    cluster.stop()


def status_of(client, uuid):
    return client.get(uuid)["status"]


def test_sigterm_finishes_the_task_in_hand(cluster):
    cluster.start_api()
    worker = cluster.start_worker("w1", "--render-threads", "1")
    with cluster.client() as client:
        uuid = client.create([SLOW])[0]["uuid"]
        wait_until(lambda: status_of(client, uuid) == "running", 60, message="running")
        worker.signal(signal.SIGTERM)
        assert worker.process.wait(timeout=120) == 0
        record = client.get(uuid)
        assert record["status"] == "done" and record["generated_by"] == "w1", cluster.logs()


def test_sigterm_without_time_gives_the_task_back(cluster):
    cluster.start_api()
    worker = cluster.start_worker("w1", "--render-threads", "1", "--stop-timeout", "0")
    with cluster.client() as client:
        uuid = client.create([SLOW])[0]["uuid"]
        wait_until(lambda: status_of(client, uuid) == "running", 60, message="running")
        started = time.monotonic()
        worker.signal(signal.SIGTERM)
        assert worker.process.wait(timeout=30) == 0
        assert time.monotonic() - started < 10, "stops at once, without finishing the render"
        # Given back gracefully: queued again, and that attempt does not count.
        given_back = client.get(uuid)
        assert given_back["status"] == "queued" and given_back["attempts"] == 0, given_back
        cluster.start_worker("w2")
        wait_until(lambda: status_of(client, uuid) == "done", 120, message="done by w2")
        record = client.get(uuid)
        assert record["generated_by"] == "w2" and record["attempts"] == 1, record


def test_never_acknowledges_without_the_api(cluster):
    """API down when the worker takes the task: the message must survive until it is back.

    The API that comes back never republishes (its grace is longer than the
    test), so only the worker's own message can bring the task to done.
    """
    url = cluster.start_api()
    with cluster.client() as client:
        uuid = client.create([{**TINY, "width": 64, "height": 64}])[0]["uuid"]
    cluster.apis[0].stop()
    worker = cluster.start_worker("w1", "--upload-retry-seconds", "1")
    wait_until(lambda: "could not claim" in worker.tail(200), 60, message="claim failures")
    time.sleep(2)  # several give-backs and redeliveries while the API is away
    port = cluster.ports.pop()
    cluster.apis.pop()
    from support.processes import Service, wait_http

    api = Service(
        "api-again",
        "faafo.api.main",
        [
            *cluster.common(),
            "--listen-address",
            "127.0.0.1",
            "--bind-port",
            str(port),
            "--publish-grace-seconds",
            "600",
        ],
        cluster.log_dir,
    ).start()
    cluster.apis.append(api)
    cluster.ports.append(port)
    wait_http(url + "/readyz", services=[api])
    with cluster.client() as client:
        wait_until(lambda: status_of(client, uuid) == "done", 60, message="done after API returns")
        record = client.get(uuid)
    assert record["generated_by"] == "w1" and record["attempts"] == 1, record
    assert "re-published" not in api.tail(500), "the reconciler, not the worker, saved the task"
    assert f"claimed by w1 (attempt 1) [task {uuid}]" in api.tail(500)


def test_prefetch_per_slot_spreads_long_tasks_evenly(cluster):
    """With prefetch one per slot, a worker cannot hoard a queue of long tasks."""
    cluster.start_api()
    workers = [cluster.start_worker(name, "--render-threads", "1") for name in ("w1", "w2")]
    for worker in workers:
        wait_until(lambda w=worker: "consuming from" in w.tail(50), 60, message="consuming")
    batch = str(uuidlib.uuid4())
    with cluster.client() as client:
        client.create([{**MEDIUM, "batch": batch} for _ in range(4)])
        wait_all_finished(client, batch, 4, timeout=180, cluster=cluster)
        makers = [r["generated_by"] for r in client.iter_all(batch=batch)]
    # Each holds one message at a time: both get work (an unbounded prefetch lets
    # the first poller take all four); speeds on a shared machine decide the rest.
    assert 1 <= makers.count("w1") <= 3 and 1 <= makers.count("w2") <= 3, makers


def test_concurrency_renders_several_at_once(cluster):
    cluster.start_api()
    cluster.start_worker("w1", "--concurrency", "2", "--render-threads", "1")
    batch = str(uuidlib.uuid4())
    with cluster.client() as client:
        client.create([{**MEDIUM, "batch": batch} for _ in range(2)])
        wait_until(
            lambda: client.batch(batch)["counts"].get("running", 0) == 2,
            60,
            message="two running at once",
        )
        wait_all_finished(client, batch, 2, timeout=120, cluster=cluster)


def test_worker_metrics_and_json_logs(cluster):
    import json

    import httpx
    from prometheus_client.parser import text_string_to_metric_families

    from support.processes import free_port

    cluster.start_api()
    port = free_port()
    worker = cluster.start_worker("w1", "--metrics-port", str(port), "--log-format", "json")
    batch = str(uuidlib.uuid4())
    small = {**TINY, "batch": batch}
    with cluster.client() as client:
        created = client.create([small for _ in range(3)])
        wait_all_finished(client, batch, 3, timeout=60, cluster=cluster)
    text = httpx.get(f"http://127.0.0.1:{port}/metrics").text
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
    assert samples[("faafo_worker_tasks_total", (("outcome", "rendered"), ("worker", "w1")))] == 3
    assert samples[("faafo_render_seconds_count", (("kind", "julia"),))] == 3
    assert samples[("faafo_upload_seconds_count", ())] >= 1
    lines = [json.loads(line) for line in worker.tail(500).splitlines() if line.startswith("{")]
    assert lines and all({"time", "level", "service", "message"} <= set(entry) for entry in lines)
    uuids = {r["uuid"] for r in created}
    for uuid in uuids:
        mine = [entry["message"] for entry in lines if entry.get("task") == uuid]
        assert any(m.startswith("rendered") for m in mine), f"render of {uuid} not followed: {mine}"
        # The upload step too, not only the render: one line per task with its outcome.
        assert "delivered: stored" in mine, f"upload of {uuid} not followed: {mine}"
    # Lines about the whole bundle (its claim, its upload) name all its tasks.
    summaries = [entry for entry in lines if entry["message"].startswith("delivered 3 result")]
    assert summaries and set(summaries[0].get("tasks", [])) == uuids, summaries
