"""``/metrics`` parses as Prometheus text, and its counters agree with the database."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from api.conftest import png_bytes, sha, task


def scrape(client) -> dict[tuple[str, tuple], float]:
    response = client.get("/metrics")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


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
    assert value(samples, "faafo_worker_tasks", worker="w1") == 2
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
    assert (
        value(
            samples,
            "faafo_http_request_duration_seconds_count",
            method="PUT",
            route="/v1/fractal/{uuid}",
        )
        == 4
    )
