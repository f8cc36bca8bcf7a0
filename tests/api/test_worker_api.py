"""The worker-facing API and the reconciler: the mechanics of "never stuck, never lost"."""

from __future__ import annotations

import json
from datetime import timedelta

from kombu import Connection

from api.conftest import png_bytes, sha, task
from faafo.messaging.messages import decode
from faafo.messaging.topology import TASK_QUEUE
from faafo.store import fractals as store


def queued_messages(services) -> list:
    """Every message now on the task queue (drained)."""
    bodies = []
    with Connection(services.settings.transport_url) as connection:
        queue = TASK_QUEUE(connection.default_channel)
        while (message := queue.get(no_ack=True)) is not None:
            bodies.append(message.body)
    return bodies


def test_small_tasks_travel_in_bounded_bundles(client, services):
    services.settings.bundle_cost = 32 * 24 * 64 * 4
    client.post("/v1/fractal", json=[task() for _ in range(10)])
    bodies = queued_messages(services)
    sizes = [len(decode(b)) for b in bodies]
    assert sizes == [4, 4, 2]
    first = json.loads(bodies[0])[0]
    assert {"uuid", "width", "height", "iterations", "xa", "xb", "ya", "yb", "seed"} <= set(first)


def test_a_single_task_message_is_the_original_body(client, services):
    client.post("/v1/fractal", json=task(width=2000, height=400))
    (body,) = queued_messages(services)
    assert isinstance(json.loads(body), dict)


def test_claim_marks_running_and_skips_finished(client, services):
    a = client.post("/v1/fractal", json=task()).json()["uuid"]
    b = client.post("/v1/fractal", json=task()).json()["uuid"]
    png = png_bytes()
    client.put(
        f"/v1/fractal/{b}",
        params={"checksum": sha(png), "duration": 1, "generated_by": "x"},
        content=png,
        headers={"content-type": "image/png"},
    )
    claims = client.post("/v1/worker/claim", json={"worker": "w1", "uuids": [a, b, "gone"]}).json()
    assert [(c["uuid"], c["render"]) for c in claims] == [(a, True), (b, False), ("gone", False)]
    assert claims[1]["reason"] == "already done"
    record = client.get(f"/v1/fractal/{a}").json()
    assert record["status"] == "running" and record["started_at"] and record["attempts"] == 1


def test_poison_task_fails_after_max_attempts(client, services):
    uuid = client.post("/v1/fractal", json=task()).json()["uuid"]
    for attempt in range(services.settings.max_attempts):
        claim = client.post("/v1/worker/claim", json={"worker": "w", "uuids": [uuid]}).json()[0]
        assert claim["render"] and claim["attempt"] == attempt + 1
    claim = client.post("/v1/worker/claim", json={"worker": "w", "uuids": [uuid]}).json()[0]
    assert not claim["render"]
    record = client.get(f"/v1/fractal/{uuid}").json()
    assert record["status"] == "failed" and "attempts" in record["error"]


def test_failure_report_records_reason(client):
    uuid = client.post("/v1/fractal", json=task()).json()["uuid"]
    client.post("/v1/worker/failures", json=[{"uuid": uuid, "error": "boom", "worker": "w9"}])
    record = client.get(f"/v1/fractal/{uuid}").json()
    assert record["status"] == "failed" and record["error"] == "boom (worker w9)"
    assert record["finished_at"]


def test_multipart_results_store_each_once(client):
    uuids = [o["uuid"] for o in client.post("/v1/fractal", json=[task(), task()]).json()["objects"]]
    pngs = [png_bytes(colour=(i, 0, 0)) for i in range(2)]
    meta = [
        {"uuid": u, "checksum": sha(p), "duration": 0.1, "generated_by": "w"}
        for u, p in zip(uuids, pngs, strict=True)
    ]
    files = [("meta", (None, json.dumps(meta), "application/json"))]
    files += [(u, (f"{u}.png", p, "image/png")) for u, p in zip(uuids, pngs, strict=True)]
    first = client.post("/v1/worker/results", files=files)
    assert first.json() == {uuids[0]: "stored", uuids[1]: "stored"}
    again = client.post("/v1/worker/results", files=files)
    assert again.json() == {uuids[0]: "duplicate", uuids[1]: "duplicate"}
    for u, p in zip(uuids, pngs, strict=True):
        assert client.get(f"/fractal/{u}").content == p


def test_multipart_result_with_half_a_constant_is_422_and_stores_nothing(client):
    uuid = client.post("/v1/fractal", json=task()).json()["uuid"]
    png = png_bytes()
    meta = [{"uuid": uuid, "checksum": sha(png), "duration": 0.1, "generated_by": "w",
             "c_real": 0.3}]
    files = [("meta", (None, json.dumps(meta), "application/json")),
             (uuid, (f"{uuid}.png", png, "image/png"))]
    refused = client.post("/v1/worker/results", files=files)
    assert refused.status_code == 422, refused.text
    assert "give both c_real and c_imag, or neither" in refused.json()["message"]
    assert client.get(f"/v1/fractal/{uuid}").json()["status"] == "queued"


def test_heartbeat_extends_only_own_lease(client, services):
    uuid = client.post("/v1/fractal", json=task()).json()["uuid"]
    client.post("/v1/worker/claim", json={"worker": "w1", "uuids": [uuid]})
    assert client.post("/v1/worker/heartbeat", json={"worker": "w1", "uuids": [uuid]}).json() == {
        "renewed": 1
    }
    assert client.post("/v1/worker/heartbeat", json={"worker": "w2", "uuids": [uuid]}).json() == {
        "renewed": 0
    }


def test_reconciler_republishes_unpublished_and_expired(client, services):
    db = services.database
    services.settings.publish_grace_seconds = 0.001
    lost = client.post("/v1/fractal", json=task()).json()["uuid"]
    stuck = client.post("/v1/fractal", json=task()).json()["uuid"]
    queued_messages(services)
    with db.session() as session:
        store.get(session, lost).published_at = None  # the API died before publishing
    client.post("/v1/worker/claim", json={"worker": "dead", "uuids": [stuck]})
    with db.session() as session:
        store.get(session, stuck).lease_until = store.utcnow() - timedelta(seconds=1)
    assert services.reconcile() == 2
    assert client.get(f"/v1/fractal/{stuck}").json()["status"] == "queued"
    assert services.reconcile() == 0, "published tasks are not published again while queued"
    uuids = sorted(t.uuid for body in queued_messages(services) for t in decode(body))
    assert uuids == sorted([lost, stuck])


def test_reconciler_republishes_when_queue_lost_its_messages(client, services):
    services.settings.publish_grace_seconds = 0.001
    uuid = client.post("/v1/fractal", json=task()).json()["uuid"]
    queued_messages(services)  # the broker lost them
    assert services.reconcile() == 1
    assert [t.uuid for b in queued_messages(services) for t in decode(b)] == [uuid]


def test_readyz_503_when_database_down(tmp_path):
    from fastapi.testclient import TestClient

    from faafo.api.app import create_app
    from faafo.config import ApiSettings, load_settings

    settings = load_settings(
        ApiSettings,
        {
            "database_url": "postgresql+psycopg://nobody@127.0.0.1:1/none",
            "transport_url": "memory://x",
            "migrate": False,
            "data_dir": tmp_path,
        },
    )
    with TestClient(create_app(settings)) as client:
        ready = client.get("/readyz")
        assert ready.status_code == 503 and ready.json()["database"].startswith("unavailable")
        response = client.get("/v1/fractal")
        assert response.status_code == 503 and response.json()["code"] == 503
