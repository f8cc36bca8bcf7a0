"""``/metrics`` parses as Prometheus text, and its counters agree with the database."""

from __future__ import annotations

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from api.conftest import png_bytes, sha, task
from faafo.config import embedded_transport_url
from support.own_servers import OwnPostgres
from support.processes import start_api, wait_until


def parse(text: str) -> dict[tuple[str, tuple], float]:
    """Every sample of a Prometheus text page, keyed by name and sorted labels."""
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def scrape(client) -> dict[tuple[str, tuple], float]:
    response = client.get("/metrics")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    return parse(response.text)


def value(samples, name, **labels):
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_counters_agree_with_the_database(client, services):
    uuids = [
        o["uuid"]
        for o in client.post("/v1/fractal", json=[task() for _ in range(5)]).json()["objects"]
    ]
    png = png_bytes()
    for worker, uuid in zip(["w1", "w1", "w2"], uuids[:3], strict=True):
        client.post("/v1/worker/claim", json={"worker": worker, "uuids": [uuid]})
        client.put(
            f"/v1/fractal/{uuid}",
            params={"checksum": sha(png), "duration": 0.2, "generated_by": worker},
            content=png,
            headers={"content-type": "image/png"},
        )
    client.put(
        f"/v1/fractal/{uuids[0]}",
        params={"checksum": sha(png), "duration": 0.2, "generated_by": "w9"},
        content=png,
        headers={"content-type": "image/png"},
    )
    client.post("/v1/worker/failures", json=[{"uuid": uuids[3], "error": "render failed: boom"}])
    client.post("/v1/worker/claim", json={"worker": "w3", "uuids": [uuids[4]]})
    client.post("/v1/worker/claim", json={"worker": "w3", "uuids": [uuids[4]]})

    samples = scrape(client)
    from faafo.store import fractals as store

    with services.database.reading() as session:
        counts = store.counts_by_status(session)
    for status in ("queued", "running", "done", "failed"):
        assert value(samples, "faafo_tasks", status=status) == counts.get(status, 0)
    assert value(samples, "faafo_tasks_created_total") == 5
    completed = value(samples, "faafo_tasks_completed_total", worker="w1") + value(
        samples, "faafo_tasks_completed_total", worker="w2"
    )
    assert completed == counts["done"] == 3
    assert value(samples, "faafo_tasks_done_by_worker", worker="w1") == 2
    assert value(samples, "faafo_tasks_done_by_worker", worker="w2") == 1
    assert value(samples, "faafo_results_duplicate_total") == 1
    assert value(samples, "faafo_tasks_failed_total", reason="render") == 1
    assert value(samples, "faafo_task_redeliveries_total") == 1
    assert value(samples, "faafo_backlog_tasks") == 1
    assert value(samples, "faafo_queue_depth") >= 1
    assert (
        value(
            samples, "faafo_http_requests_total", method="POST", route="/v1/fractal", status="201"
        )
        == 1
    )
    puts = {
        labels: count
        for (name, labels), count in samples.items()
        if name == "faafo_http_request_duration_seconds_count"
        and dict(labels)["method"] == "PUT"
        and dict(labels)["route"] == "/v1/fractal/{uuid}"
    }
    assert sum(puts.values()) == 4
    assert value(samples, "faafo_ready") == 1
    assert value(samples, "faafo_dependency_up", dependency="database") == 1
    assert value(samples, "faafo_dependency_up", dependency="queue") == 1


def test_latency_is_labelled_by_status_like_the_request_counter(client):
    """The issue asks latency by route and status: a 404's time is not mixed with a 200's."""
    created = client.post("/v1/fractal", json=task()).json()["uuid"]
    assert client.get(f"/v1/fractal/{created}").status_code == 200
    missing = "00000000-0000-4000-8000-000000000000"
    for _ in range(2):
        assert client.get(f"/v1/fractal/{missing}").status_code == 404
    samples = scrape(client)
    route = "/v1/fractal/{uuid}"
    for status, expected in (("200", 1), ("404", 2)):
        labels = {"method": "GET", "route": route, "status": status}
        assert value(samples, "faafo_http_requests_total", **labels) == expected
        assert value(samples, "faafo_http_request_duration_seconds_count", **labels) == expected
    counted = {
        labels for (name, labels) in samples if name == "faafo_http_requests_total"
    }
    timed = {
        labels for (name, labels) in samples if name == "faafo_http_request_duration_seconds_count"
    }
    assert counted == timed, "every (method, route, status) counted is also timed"


@pytest.mark.servers
def test_ready_gauge_follows_the_database_while_metrics_still_answer(tmp_path):
    """``up`` stays 1 while the database is down (``/metrics`` answers): ``faafo_ready`` is 0.

    A real API process on a PostgreSQL cluster of this test's own, stopped and
    started again: the gauge agrees with ``/readyz`` at every step.
    """
    postgres = OwnPostgres()
    try:
        postgres.start()
        service, _, url = start_api(
            "api",
            tmp_path,
            "--database-url",
            postgres.url,
            "--transport-url",
            embedded_transport_url(tmp_path / "data"),
        )
        try:

            def ready_gauge() -> tuple[int, float, float]:
                metrics = httpx.get(f"{url}/metrics", timeout=30)
                assert metrics.status_code == 200, metrics.text
                samples = parse(metrics.text)
                database = value(samples, "faafo_dependency_up", dependency="database")
                return httpx.get(f"{url}/readyz", timeout=30).status_code, value(
                    samples, "faafo_ready"
                ), database

            assert ready_gauge() == (200, 1.0, 1.0)
            postgres.stop()
            wait_until(lambda: ready_gauge() == (503, 0.0, 0.0), 60, message="not ready")
            postgres.start()
            wait_until(lambda: ready_gauge() == (200, 1.0, 1.0), 60, message="ready again")
        finally:
            service.stop()
    finally:
        postgres.cleanup()
