"""Scenario 2.5: poison messages on the queue, and a task that kills every worker.

Messages no worker can use (not JSON, not a task, impossible parameters) go
to the ``dead`` queue with the reason, and the task they name, when there is
one, is marked failed with that reason; a message for an unknown uuid is
dropped. Either way the worker carries on (same process) and renders the
next real tasks. A task whose renders keep dying is failed once it has been
claimed more than ``max_attempts`` times, instead of crash-looping workers.
"""

from __future__ import annotations

import contextlib
import json
import time
import uuid as uuidlib

import httpx
import pytest
from kombu import Consumer, Producer

from faafo.config import embedded_database_url, embedded_transport_url
from faafo.messaging import broker
from faafo.messaging.topology import DEAD_QUEUE, TASK_EXCHANGE, TASK_QUEUE
from support.faults import (
    LARGE,
    NOT_BANDED,
    FaultCluster,
    assert_done_once,
    embedded_urls,
    small_task,
    wait_finished,
)
from support.processes import free_port, wait_until

pytestmark = pytest.mark.slow


@pytest.fixture(params=["embedded", "rabbitmq"])
def urls(request, tmp_path) -> tuple[str, str]:
    if request.param == "embedded":
        data = tmp_path / "data"
        return embedded_urls(data)
    request.applymarker(pytest.mark.servers)
    return embedded_database_url(tmp_path / "data"), request.getfixturevalue("rabbitmq_url")


def publish_raw(transport_url: str, bodies: list[tuple[bytes | str, str]]) -> None:
    """Put messages on the task queue as any publisher could, bypassing the API."""
    connection = broker.connection(transport_url)
    try:
        channel = connection.channel()
        producer = Producer(channel, exchange=TASK_EXCHANGE, routing_key="normal")
        for body, content_type in bodies:
            producer.publish(
                body,
                content_type=content_type,
                content_encoding="utf-8" if content_type == "application/json" else "binary",
                delivery_mode=2,
                declare=[TASK_QUEUE],
            )
    finally:
        connection.release()


def purge_tasks(transport_url: str) -> None:
    connection = broker.connection(transport_url)
    try:
        TASK_QUEUE(connection.channel()).purge()
    finally:
        connection.release()


def dead_letters(transport_url: str, expected: int, timeout: float = 30) -> list[tuple[bytes, str]]:
    """Bodies and reasons on the dead queue (consumed: the queue is the test's own)."""
    got: list[tuple[bytes, str]] = []
    connection = broker.connection(transport_url)
    try:
        channel = connection.channel()

        def take(message) -> None:  # type: ignore[no-untyped-def]
            got.append((message.body, (message.headers or {}).get("x-faafo-reason", "")))
            message.ack()

        with Consumer(channel, queues=[DEAD_QUEUE], on_message=take, accept=None):
            wait_until(
                lambda: _drain(connection) or len(got) >= expected, timeout, message="dead letters"
            )
            _drain(connection)
    finally:
        connection.release()
    return got


def _drain(connection) -> bool:  # type: ignore[no-untyped-def]
    with contextlib.suppress(TimeoutError):
        connection.drain_events(timeout=0.2)
    return False


def task_fields(uuid: str, **fields: object) -> dict:
    body = {**small_task("x", 0), "uuid": uuid, **fields}
    body.pop("batch")
    return body


def task_body(uuid: str, **fields: object) -> str:
    return json.dumps(task_fields(uuid, **fields))


def dead_count(transport_url: str) -> int:
    """Messages on the dead queue, without taking them."""
    connection = broker.connection(transport_url)
    try:
        return int(DEAD_QUEUE(connection.channel()).queue_declare(passive=True).message_count)
    finally:
        connection.release()


def test_poison_messages_fail_or_dead_letter_and_the_worker_carries_on(tmp_path, urls):
    database_url, transport_url = urls
    cluster = FaultCluster(
        database_url,
        transport_url,
        tmp_path,
        tmp_path / "data",
        extra_api_args=["--publish-grace-seconds", "60"],  # no republishing during the test
    )
    try:
        url = cluster.start_api()
        victims = str(uuidlib.uuid4())
        with cluster.client() as client:
            # Real tasks whose only message will be a corrupt one.
            bad_width, bad_kind, bad_number, mate, bad_mate = (
                r["uuid"] for r in client.create([small_task(victims, i) for i in range(5)])
            )
        purge_tasks(transport_url)
        unknown = str(uuidlib.uuid4())
        poison = [
            (b"\x00\xffnot json {", "application/octet-stream"),
            ("42", "application/json"),
            ("[]", "application/json"),
            ('{"uuid": 7}', "application/json"),
            (task_body(bad_width, width=-5), "application/json"),
            (task_body(bad_number, xa=float("nan")), "application/json"),
            (task_body(bad_kind, kind="no-such-kind"), "application/json"),
            # A bundle with one bad task: every task it names is failed, not only that one.
            (json.dumps([task_fields(mate), task_fields(bad_mate, width=-5)]), "application/json"),
            (task_body(unknown), "application/json"),
        ]
        publish_raw(transport_url, poison)
        worker = cluster.start_worker("w1")
        pid = worker.process.pid  # type: ignore[union-attr]

        batch = str(uuidlib.uuid4())
        with cluster.client() as client:
            wait_finished(client, victims, 5, timeout=60, logs=cluster.logs)
            good = [r["uuid"] for r in client.create([small_task(batch, i) for i in range(10)])]
            wait_finished(client, batch, 10, timeout=60, logs=cluster.logs)
            records = {u: client.get(u) for u in (bad_width, bad_kind, bad_number, mate, bad_mate)}
        assert worker.alive() and worker.process.pid == pid, "the worker carried on"  # type: ignore[union-attr]
        assert_done_once(url, good, database_url=database_url)

        assert records[bad_width]["status"] == "failed"
        assert "unusable task message" in records[bad_width]["error"]
        assert "width" in records[bad_width]["error"]
        assert records[bad_number]["status"] == "failed" and "xa" in records[bad_number]["error"]
        assert records[bad_kind]["status"] == "failed"
        assert "kind" in records[bad_kind]["error"], records[bad_kind]
        for uuid in (mate, bad_mate):
            assert records[uuid]["status"] == "failed", records[uuid]
            assert "task 1 of the bundle: bad width" in records[uuid]["error"], records[uuid]
        for uuid in records:
            assert httpx.get(f"{url}/fractal/{uuid}").status_code == 404, "no image for a failure"
        assert httpx.get(f"{url}/v1/fractal/{unknown}").status_code == 404, "nothing invented"

        dead = dead_letters(transport_url, expected=7)
        reasons = {body if isinstance(body, bytes) else body.encode(): why for body, why in dead}
        assert len(dead) == 7, dead
        assert all(why for why in reasons.values()), f"every dead letter says why: {dead}"
        # Not the unknown kind (a render failure) nor the unknown uuid (dropped).
        for body, _ in [*poison[:6], poison[7]]:
            assert (body if isinstance(body, bytes) else body.encode()) in reasons, body
        assert "dead-lettered" in worker.tail(500)
        # Nothing left to loop on: the task queue is empty and stays so.
        from faafo.messaging.publisher import Publisher

        publisher = Publisher(transport_url)
        try:
            assert publisher.queue_depth() == 0
        finally:
            publisher.close()
    finally:
        cluster.stop()


def test_poison_is_kept_until_the_api_has_failed_its_tasks(tmp_path):
    """The API is down when the worker finds a poison bundle: it keeps the message,
    retries the report, and dead-letters only once the tasks are failed."""
    data = tmp_path / "data"
    database_url, transport_url = embedded_urls(data)
    cluster = FaultCluster(
        database_url,
        transport_url,
        tmp_path,
        data,
        extra_api_args=["--publish-grace-seconds", "600"],
    )
    try:
        port = free_port()
        cluster.start_api(port)
        victims = str(uuidlib.uuid4())
        with cluster.client() as client:
            good, bad = (
                r["uuid"] for r in client.create([small_task(victims, i) for i in range(2)])
            )
        purge_tasks(transport_url)
        cluster.apis[0].stop()
        bundle = json.dumps([task_fields(good), task_fields(bad, xa=float("inf"))])
        publish_raw(transport_url, [(bundle, "application/json")])
        worker = cluster.start_worker("w1", "--upload-retry-seconds", "1")
        wait_until(lambda: "could not report" in worker.tail(200), 60, message="a failed report")
        time.sleep(3)  # retries while the API is away
        assert dead_count(transport_url) == 0, "dead-lettered before its tasks were failed"

        cluster.restart_api(port)
        with cluster.client() as client:
            wait_finished(client, victims, 2, timeout=60, logs=cluster.logs)
            records = [client.get(uuid) for uuid in (good, bad)]
        for record in records:
            assert record["status"] == "failed", record
            assert "unusable task message: task 1 of the bundle: bad xa" in record["error"], record
        dead = dead_letters(transport_url, expected=1)
        assert [body for body, _ in dead] == [bundle.encode()], dead
        assert worker.alive()
    finally:
        cluster.stop()


def test_task_that_kills_its_workers_fails_after_max_attempts(tmp_path):
    """A render that never survives (here: ``kill -9`` each time) ends failed, not looping."""
    data = tmp_path / "data"
    database_url = embedded_database_url(data)
    cluster = FaultCluster(
        database_url,
        embedded_transport_url(data),
        tmp_path,
        data,
        extra_api_args=["--band-cost", NOT_BANDED, "--max-attempts", "2"],
    )
    try:
        url = cluster.start_api()
        batch = str(uuidlib.uuid4())
        with cluster.client() as client:
            deadly = client.create([{**LARGE, "batch": batch}])[0]["uuid"]
            for attempt in (1, 2):
                worker = cluster.start_worker(f"doomed-{attempt}", "--render-threads", "1")
                wait_until(
                    lambda a=attempt: client.get(deadly)["attempts"] == a,
                    60,
                    message=f"attempt {attempt} claimed",
                )
                worker.kill()
            survivor = cluster.start_worker("survivor")
            wait_until(lambda: client.get(deadly)["status"] == "failed", 60, message="task failed")
            record = client.get(deadly)
            assert "gave up after 2 attempts" in record["error"], record
            assert record["attempts"] == 3
            # The worker that refused it is fine and renders the next task.
            nxt = client.create([small_task(batch, 1)])[0]["uuid"]
            wait_until(lambda: client.get(nxt)["status"] == "done", 60, message="next task")
        assert survivor.alive()
        assert httpx.get(f"{url}/fractal/{deadly}").status_code == 404
        assert_done_once(url, [nxt], database_url=database_url)
    finally:
        cluster.stop()
