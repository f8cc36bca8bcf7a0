"""The worker's encode-time histogram and upload-failure counter, scraped from a real worker.

src/faafo/worker/metrics.py declares ``faafo_encode_seconds`` (labelled by
kind) and ``faafo_upload_failures``; runner.py observes the first once per
rendered task (``_observe``) and increments the second once per delivery
that no API confirmed before ``upload_retry_seconds`` (``_handing_over``). A
failover from one endpoint to the next inside that time is no failure: only
an API that stays away (or refuses the result) is counted, so the scenario
here stops the only API while the worker renders, and starts it again.
"""

from __future__ import annotations

import time
import uuid as uuidlib

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from support.cluster import wait_all_finished
from support.faults import LARGE, NOT_BANDED, FaultCluster, embedded_urls
from support.processes import free_port, wait_until

# Renders in milliseconds.
TINY_JULIA = {
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
TINY_MANDELBROT = {
    "width": 72,
    "height": 56,
    "iterations": 60,
    "kind": "mandelbrot",
    "xa": -2.0,
    "xb": 1.0,
    "ya": -1.2,
    "yb": 1.2,
}


@pytest.fixture
def cluster(tmp_path):
    data = tmp_path / "data"
    cluster = FaultCluster(
        *embedded_urls(data),
        tmp_path,
        data,
        extra_api_args=["--band-cost", NOT_BANDED],  # whole tasks: one observation each
    )
    yield cluster
    cluster.stop()


def scrape(port: int) -> dict[tuple[str, tuple], float]:
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def by_kind(samples: dict[tuple[str, tuple], float], name: str) -> dict[str, float]:
    return {dict(labels)["kind"]: v for (n, labels), v in samples.items() if n == name}


def test_encode_histogram_counts_each_rendered_task_by_kind(cluster):
    cluster.start_api()
    port = free_port()
    cluster.start_worker("w1", "--metrics-port", str(port))
    batch = str(uuidlib.uuid4())
    tasks = [{**TINY_JULIA, "batch": batch} for _ in range(2)]
    tasks += [{**TINY_MANDELBROT, "batch": batch, "width": 72 + i} for i in range(3)]
    with cluster.client() as client:
        client.create(tasks)
        status = wait_all_finished(client, batch, 5, timeout=90, cluster=cluster)
        assert status["counts"] == {"done": 5}, status
    samples = scrape(port)
    assert samples[("faafo_worker_tasks_total", (("outcome", "rendered"), ("worker", "w1")))] == 5
    # One observation per rendered task, under the task's own kind.
    assert by_kind(samples, "faafo_encode_seconds_count") == {"julia": 2, "mandelbrot": 3}
    # The colour + PNG time itself, not a zero placeholder.
    sums = by_kind(samples, "faafo_encode_seconds_sum")
    assert sums.keys() == {"julia", "mandelbrot"} and all(v > 0 for v in sums.values()), sums
    # Every observation lands in the +Inf bucket, which equals the count.
    inf = {
        dict(labels)["kind"]: v
        for (n, labels), v in samples.items()
        if n == "faafo_encode_seconds_bucket" and dict(labels)["le"] == "+Inf"
    }
    assert inf == {"julia": 2, "mandelbrot": 3}, inf
    # Nothing went wrong, so no upload failure was counted.
    assert samples[("faafo_upload_failures_total", ())] == 0


def test_upload_failure_is_counted_and_the_task_still_ends_done(cluster):
    """The only API stops while the worker renders: the upload fails after
    ``--upload-retry-seconds``, is counted, and the message goes back; once the
    API is back the task is rendered again and ends done."""
    url = cluster.start_api()
    api_port = cluster.ports[0]
    port = free_port()
    worker = cluster.start_worker(
        "w1",
        "--metrics-port",
        str(port),
        "--render-threads",
        "1",
        "--upload-retry-seconds",
        "1",
    )
    with cluster.client() as client:
        uuid = client.create([LARGE])[0]["uuid"]
        wait_until(lambda: client.get(uuid)["status"] == "running", 60, message="claimed")
    cluster.apis[0].stop()
    assert "delivered" not in worker.tail(200), (
        "the render ended before the API stopped; the scenario needs a longer task\n"
        + cluster.logs()
    )
    assert scrape(port)[("faafo_upload_failures_total", ())] == 0

    def failures() -> float:
        return scrape(port)[("faafo_upload_failures_total", ())]

    wait_until(lambda: failures() >= 1, 120, message="an upload failure counted")
    assert "could not deliver 1 result(s)" in worker.tail(500), worker.tail(500)
    # While the API is away nothing can be claimed, so nothing else is uploaded.
    time.sleep(1)
    assert failures() == 1

    assert cluster.restart_api(api_port) == url
    with cluster.client() as client:
        wait_until(
            lambda: client.get(uuid)["status"] == "done", 180, message="done after the API is back"
        )
        record = client.get(uuid)
    assert record["generated_by"] == "w1", record
    samples = scrape(port)
    assert samples[("faafo_upload_failures_total", ())] == 1, cluster.logs()
    # The first render was lost with its upload; the task was rendered again,
    # and each render was observed by the encode histogram.
    rendered = samples[("faafo_worker_tasks_total", (("outcome", "rendered"), ("worker", "w1")))]
    assert rendered >= 2, cluster.logs()
    assert by_kind(samples, "faafo_encode_seconds_count") == {"mandelbrot": rendered}
    assert samples[("faafo_upload_seconds_count", ())] >= 1


def test_a_band_whose_upload_fails_is_counted_too(tmp_path):
    """Huge tasks travel as bands: a band the API never confirmed counts as an upload
    failure like a whole task's, and the fractal still ends done once the API is back."""
    data = tmp_path / "data"
    # LARGE is about 4e10 pixel-iterations: two bands of a few seconds each.
    cluster = FaultCluster(*embedded_urls(data), tmp_path, data,
                           extra_api_args=["--band-cost", str(2 * 10**10)])
    try:
        url = cluster.start_api()
        api_port = cluster.ports[0]
        port = free_port()
        worker = cluster.start_worker("w1", "--metrics-port", str(port), "--render-threads", "1",
                                      "--upload-retry-seconds", "1")
        with cluster.client() as client:
            uuid = client.create([LARGE])[0]["uuid"]
            wait_until(lambda: client.get(uuid)["status"] == "running", 60, message="claimed")
        cluster.apis[0].stop()
        assert "delivered band" not in worker.tail(200), (
            "a band was delivered before the API stopped; the scenario needs longer bands\n"
            + cluster.logs()
        )
        wait_until(lambda: scrape(port)[("faafo_upload_failures_total", ())] >= 1, 120,
                   message="a band's upload failure counted")
        assert "not delivered" in worker.tail(500), worker.tail(500)
        assert cluster.restart_api(api_port) == url
        with cluster.client() as client:
            wait_until(lambda: client.get(uuid)["status"] == "done", 240,
                       message="done after the API is back")
    finally:
        cluster.stop()
