"""The reconciler finds lost messages in a busy queue without doubling a waiting backlog,
and publishes the assembly of banded fractals left without one."""

from __future__ import annotations

from datetime import timedelta

from kombu import Connection

from api.conftest import png_bytes, sha, task
from faafo.messaging.messages import decode
from faafo.messaging.publisher import Publisher
from faafo.messaging.topology import TASK_QUEUE
from faafo.store import bands
from faafo.store import fractals as store
from faafo.store.models import IdempotencyKey


def drain(services) -> list[list]:
    """Take every message off the task queue: a list of tasks per message."""
    messages = []
    with Connection(services.settings.transport_url) as connection:
        queue = TASK_QUEUE(connection.default_channel)
        while (message := queue.get(no_ack=True)) is not None:
            messages.append(decode(message.body))
    return messages


def put_back(services, messages: list[list]) -> None:
    services.publisher.publish(messages)


def create(client, count: int = 1) -> list[str]:
    body = [task() for _ in range(count)]
    return [o["uuid"] for o in client.post("/v1/fractal", json=body).json()["objects"]]


def published_ago(services, seconds_by_uuid: dict[str, float]) -> None:
    now = store.utcnow()
    with services.database.session() as session:
        for uuid, seconds in seconds_by_uuid.items():
            store.get(session, uuid).published_at = now - timedelta(seconds=seconds)


def claim(client, uuids: list[str]) -> None:
    claims = client.post("/v1/worker/claim", json={"worker": "w", "uuids": uuids}).json()
    assert all(c["render"] for c in claims)


def uuids_of(messages: list[list]) -> list[str]:
    return sorted(t.uuid for message in messages for t in message)


def test_a_message_lost_from_a_busy_queue_is_found_without_waiting_for_it_to_drain(
    client, services
):
    services.settings.publish_grace_seconds = 5
    (lost,), (taken,), (waiting_1,), (waiting_2,) = (create(client) for _ in range(4))
    messages = drain(services)
    # The broker lost the first message; a worker took the second; two wait their turn.
    put_back(services, [m for m in messages if m[0].uuid in (waiting_1, waiting_2)])
    claim(client, [taken])
    published_ago(services, {lost: 40, taken: 30, waiting_1: 20, waiting_2: 15})
    assert services.reconcile() == 1
    assert uuids_of(drain(services)) == sorted([waiting_1, waiting_2, lost])
    assert client.get(f"/v1/fractal/{lost}").json()["status"] == "queued"


def test_a_long_waiting_backlog_is_never_republished(client, services):
    services.settings.publish_grace_seconds = 1
    uuids = [create(client)[0] for _ in range(12)]
    published_ago(services, {u: 100 - i for i, u in enumerate(uuids)})
    claim(client, [uuids[-1]])  # the newest was taken: everything else is "overtaken"...
    messages = drain(services)
    put_back(services, [m for m in messages if m[0].uuid != uuids[-1]])
    assert services.reconcile() == 0, "... but every one of them still has its message"
    assert len(drain(services)) == 11


def test_a_bundle_counts_as_one_message(client, services):
    services.settings.publish_grace_seconds = 1
    services.settings.bundle_cost = 32 * 24 * 64 * 4  # 4 tasks a message
    create(client, 10)
    (later,) = create(client)
    messages = drain(services)
    assert [len(m) for m in messages] == [4, 4, 2, 1]
    lost = messages[0]
    put_back(services, messages[1:3])
    claim(client, [later])
    # The first message was published first (one request's bundles share one
    # instant otherwise, and which of them is gone would be a coin toss).
    ages = {t.uuid: 60 - index for index, message in enumerate(messages[:3]) for t in message}
    published_ago(services, {**ages, later: 30})
    assert services.reconcile() == 4, "the lost bundle's tasks, not all ten"
    assert uuids_of(drain(services)) == uuids_of([*messages[1:3], lost])


def test_a_task_not_yet_overtaken_is_left_alone(client, services):
    """A message a worker holds but has not claimed yet is missing from the queue too."""
    services.settings.publish_grace_seconds = 1
    (in_flight,), (waiting,) = create(client), create(client)
    messages = drain(services)
    put_back(services, [m for m in messages if m[0].uuid == waiting])
    published_ago(services, {in_flight: 60, waiting: 50})
    assert services.reconcile() == 0, "nothing claimed after it: it may be at the head"
    (overtaking,) = create(client)
    drain(services)
    put_back(services, [m for m in messages if m[0].uuid == waiting])
    claim(client, [overtaking])
    assert services.reconcile() == 1
    assert uuids_of(drain(services)) == sorted([waiting, in_flight])


def test_an_empty_queue_republishes_every_published_task(client, services):
    services.settings.publish_grace_seconds = 1
    uuids = create(client, 3)
    drain(services)
    published_ago(services, {u: 30 for u in uuids})
    assert services.reconcile() == 3
    assert uuids_of(drain(services)) == sorted(uuids)
    assert services.reconcile() == 0, "just published: within the grace period"


def banded_task(client, services) -> tuple[str, list]:
    services.settings.band_cost = 32 * 8 * 64
    (uuid,) = create(client)
    with services.database.reading() as session:
        planned = bands.of(session, uuid)
    assert len(planned) == 3
    return uuid, planned


def test_bands_count_as_one_message_each(client, services):
    services.settings.publish_grace_seconds = 1
    uuid, _ = banded_task(client, services)
    messages = drain(services)
    assert [m[0].band for m in messages] == [0, 1, 2]
    published_ago(services, {uuid: 30})
    put_back(services, messages)
    assert services.reconcile() == 0
    drain(services)
    assert services.reconcile() == 1, "one task"
    assert [m[0].band for m in drain(services)] == [0, 1, 2]


def store_every_band(client, services, uuid: str, planned: list) -> None:
    """Claim and store each band through the store, as put_band does, minus the publish."""
    for band in planned:
        claimed = client.post(
            "/v1/worker/bands/claim", json={"worker": "w", "uuid": uuid, "band": band.idx}
        ).json()
        assert claimed["render"]
        png = png_bytes(32, band.y1 - band.y0)
        with services.database.session() as session:
            outcome = bands.store_band(session, uuid, band.idx, png, 0.1, "w")
        assert outcome[0] == "stored"


def test_the_reconciler_publishes_an_assembly_nobody_published(client, services):
    """An API that died after store_band committed, before it published the assembly."""
    uuid, planned = banded_task(client, services)
    drain(services)
    store_every_band(client, services, uuid, planned)
    assert client.get(f"/v1/fractal/{uuid}").json()["status"] == "running"
    assert services.reconcile() == 1
    (message,) = drain(services)
    assert [(t.uuid, t.assemble) for t in message] == [(uuid, 3)]
    assert services.reconcile() == 0, "published once"
    assert drain(services) == []


def test_a_failed_assembly_publish_is_retried_by_the_reconciler(client, services):
    uuid, planned = banded_task(client, services)
    drain(services)
    for band in planned[:-1]:
        client.post("/v1/worker/bands/claim", json={"worker": "w", "uuid": uuid, "band": band.idx})
        png = png_bytes(32, band.y1 - band.y0)
        query = {"checksum": sha(png), "duration": 0.1, "generated_by": "w"}
        client.put(
            f"/v1/worker/bands/{uuid}/{band.idx}",
            params=query,
            content=png,
            headers={"content-type": "image/png"},
        )
    last = planned[-1]
    client.post("/v1/worker/bands/claim", json={"worker": "w", "uuid": uuid, "band": last.idx})
    working = services.publisher
    services.publisher = Publisher("amqp://guest:guest@127.0.0.1:1//")  # nothing listens there
    try:
        png = png_bytes(32, last.y1 - last.y0)
        query = {"checksum": sha(png), "duration": 0.1, "generated_by": "w"}
        response = client.put(
            f"/v1/worker/bands/{uuid}/{last.idx}",
            params=query,
            content=png,
            headers={"content-type": "image/png"},
        )
        assert response.json()["result"] == "stored"
    finally:
        services.publisher.close()
        services.publisher = working
    assert drain(services) == []
    assert services.reconcile() == 1
    assert [t.assemble for m in drain(services) for t in m] == [3]


def test_expired_idempotency_keys_are_dropped(client, services):
    client.post("/v1/fractal", json=task(), headers={"Idempotency-Key": "old"})
    client.post("/v1/fractal", json=task(), headers={"Idempotency-Key": "new"})
    with services.database.session() as session:
        keys = session.query(IdempotencyKey).order_by(IdempotencyKey.created_at).all()
        keys[0].created_at -= timedelta(hours=25)
    services.reconcile()
    with services.database.reading() as session:
        assert session.query(IdempotencyKey).count() == 1
    retried = client.post("/v1/fractal", json=task(), headers={"Idempotency-Key": "old"})
    assert retried.status_code == 201, "a forgotten key is a new request"
