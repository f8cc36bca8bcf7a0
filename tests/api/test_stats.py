"""GET /v1/stats: counts, queue depth, backlog, throughput and per-worker activity."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from pydantic import SecretStr
from sqlalchemy import update

from api.conftest import png_bytes, sha, task
from faafo.store.models import Fractal


def create(client, n=1, **overrides):
    response = client.post("/v1/fractal", json=[task(**overrides) for _ in range(n)])
    assert response.status_code == 201, response.text
    return [o["uuid"] for o in response.json()["objects"]]


def claim(client, uuids, worker):
    response = client.post("/v1/worker/claim", json={"worker": worker, "uuids": uuids})
    assert all(c["render"] for c in response.json()), response.text


def deliver(client, uuid, worker, duration=0.5):
    png = png_bytes()
    query = {"checksum": sha(png), "duration": duration, "generated_by": worker}
    response = client.put(
        f"/v1/fractal/{uuid}", params=query, content=png, headers={"content-type": "image/png"}
    )
    assert response.status_code == 200, response.text


def stats(client, **params):
    response = client.get("/v1/stats", params=params)
    assert response.status_code == 200, response.text
    return response.json()


def moment(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def test_empty_system(client):
    body = stats(client)
    assert body["counts"] == {"queued": 0, "running": 0, "done": 0, "failed": 0}
    assert body["total"] == 0 and body["workers"] == []
    assert body["queue_depth"] == 0
    assert body["backlog"] == {"tasks": 0, "pixel_iterations": 0}
    assert body["throughput"]["done"] == 0 and body["throughput"]["per_minute"] == 0
    assert moment(body["generated_at"]).tzinfo is not None


def test_counts_backlog_throughput_and_workers(client):
    a, b, c, d = create(client, 4)
    claim(client, [a, b], "w1")
    deliver(client, a, "w1", duration=0.75)
    failed = client.post("/v1/worker/failures", json=[{"uuid": b, "error": "boom", "worker": "w1"}])
    assert failed.json() == {"failed": 1}
    claim(client, [c], "w2")
    body = stats(client)
    assert body["counts"] == {"queued": 1, "running": 1, "done": 1, "failed": 1}
    assert body["total"] == 4
    assert body["queue_depth"] is not None and body["queue_depth"] >= 1
    assert body["backlog"] == {"tasks": 2, "pixel_iterations": 2 * 32 * 24 * 64}
    assert body["throughput"]["done"] == 1 and body["throughput"]["failed"] == 1
    assert body["throughput"]["per_minute"] == 1.0
    assert body["throughput"]["pixels_per_second"] == round(32 * 24 / 60, 1)
    workers = {w["name"]: w for w in body["workers"]}
    assert set(workers) == {"w1", "w2"}
    w1, w2 = workers["w1"], workers["w2"]
    assert (w1["running"], w1["done"], w1["failed"], w1["done_last_minute"]) == (0, 1, 1, 1)
    assert (w2["running"], w2["done"], w2["failed"]) == (1, 0, 0)
    assert {t["uuid"] for t in w1["recent"]} == {a, b}
    done = next(t for t in w1["recent"] if t["uuid"] == a)
    assert done["status"] == "done" and done["duration"] == 0.75 and done["finished_at"]
    assert [t["uuid"] for t in w2["recent"]] == [c]
    now = datetime.now(UTC)
    for worker in (w1, w2):
        assert now - moment(worker["last_seen"]) < timedelta(seconds=30)
    assert d not in {t["uuid"] for w in body["workers"] for t in w["recent"]}


def test_recent_tasks_are_bounded_and_newest_first(client, services):
    uuids = create(client, 8)
    claim(client, uuids, "w1")
    for uuid in uuids:
        deliver(client, uuid, "w1")
    base = datetime(2026, 1, 1)
    with services.database.session() as session:
        for i, uuid in enumerate(uuids):
            session.execute(
                update(Fractal)
                .where(Fractal.uuid == uuid)
                .values(started_at=base, finished_at=base + timedelta(i))
            )
    recent = stats(client)["workers"][0]["recent"]
    assert [t["uuid"] for t in recent] == list(reversed(uuids))[:5]
    assert [t["uuid"] for t in stats(client, recent=2)["workers"][0]["recent"]] == uuids[:-3:-1]
    assert stats(client, recent=0)["workers"][0]["recent"] == []
    assert client.get("/v1/stats", params={"recent": 51}).status_code == 422


def test_last_seen_counts_lease_renewals(client, services):
    """A worker busy with one long render is still seen: its heartbeats renew the lease."""
    (uuid,) = create(client)
    claim(client, [uuid], "slow")
    long_ago = datetime.now(UTC).replace(tzinfo=None) - timedelta(hours=2)
    with services.database.session() as session:
        session.execute(
            update(Fractal)
            .where(Fractal.uuid == uuid)
            .values(started_at=long_ago, lease_until=long_ago + services.lease)
        )
    stale = moment(stats(client)["workers"][0]["last_seen"])
    assert datetime.now(UTC) - stale > timedelta(hours=1)
    renewed = client.post("/v1/worker/heartbeat", json={"worker": "slow", "uuids": [uuid]})
    assert renewed.json() == {"renewed": 1}
    fresh = moment(stats(client)["workers"][0]["last_seen"])
    assert datetime.now(UTC) - fresh < timedelta(seconds=30)


def test_queue_down_gives_null_depth_not_an_error(client, services, monkeypatch):
    def down() -> int:
        raise ConnectionError("broker gone")

    monkeypatch.setattr(services.publisher, "queue_depth", down)
    body = stats(client)
    assert body["queue_depth"] is None and body["counts"]["queued"] == 0


def test_documented_in_openapi(client):
    schema = client.get("/openapi.json").json()
    operation = schema["paths"]["/v1/stats"]["get"]
    assert "stats" in operation["tags"]
    ref = operation["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
    stats_schema = schema["components"]["schemas"][ref.rsplit("/", 1)[-1]]
    assert {"counts", "queue_depth", "backlog", "throughput", "workers"} <= set(
        stats_schema["properties"]
    )


def test_private_reads_need_the_client_token(client, services):
    services.settings.private_reads = True
    services.settings.client_token = SecretStr("s3cret")
    assert client.get("/v1/stats").status_code == 401
    ok = client.get("/v1/stats", headers={"Authorization": "Bearer s3cret"})
    assert ok.status_code == 200


def test_throughput_walks_past_the_first_chunk_when_busy(client, services):
    """More tasks finished in the window than one chunk holds: all of them are counted."""
    from faafo.store import fractals as store
    from faafo.store import stats as queries

    old = create(client, 4)  # finished long ago: where the walk stops
    claim(client, old, "w1")
    for uuid in old:
        deliver(client, uuid, "w1")
    with services.database.session() as session:
        session.execute(
            update(Fractal).where(Fractal.uuid.in_(old)).values(finished_at=datetime(2026, 1, 1))
        )
    uuids = create(client, 10)
    claim(client, uuids, "w1")
    for uuid in uuids:
        deliver(client, uuid, "w1")
    create(client, 2)  # the newest are still queued
    with services.database.reading() as session:
        seen = queries.activity(session, store.utcnow(), lease=services.lease,
                                window=timedelta(seconds=60), chunk=3)
    assert seen.throughput.done == 10
    (w1,) = seen.workers
    assert w1.done == 14 and w1.done_recently == 10 and len(w1.recent) == 5
