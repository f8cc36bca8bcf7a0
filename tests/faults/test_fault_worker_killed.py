"""Scenario 2.1: ``kill -9`` a worker in the middle of a large render.

The killed worker never acknowledged its message, so the queue gives it to
the surviving worker (RabbitMQ when the TCP connection drops; the embedded
queue when a live consumer finds the dead one's lock file released). The
task's claim is taken over, rendered once more, and stored once.
"""

from __future__ import annotations

import re
import signal
import time
import uuid as uuidlib

import pytest

from faafo.config import embedded_database_url
from support.faults import (
    LARGE,
    NOT_BANDED,
    FaultCluster,
    assert_done_once,
    embedded_urls,
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
        return embedded_urls(data)
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


def attempts(client, uuids: list[str]) -> list[int]:  # type: ignore[no-untyped-def]
    return [client.get(uuid)["attempts"] for uuid in uuids]


def test_a_task_that_kills_its_workers_fails_alone_not_with_its_bundle(tmp_path, urls):
    """One message of five tasks, the first of which kills every worker that renders it.

    The bundle comes back after the first crash with its tasks already
    attempted: it is split, one message per task, so only the deadly one keeps
    crashing workers (and fails after ``max_attempts``); its four bundle-mates
    are rendered.
    """
    database_url, transport_url = urls
    cluster = FaultCluster(
        database_url,
        transport_url,
        tmp_path,
        tmp_path / "data",
        extra_api_args=[
            "--band-cost",
            NOT_BANDED,
            # All five in one message, whatever their cost.
            "--bundle-cost",
            NOT_BANDED,
            "--max-bundle-tasks",
            "5",
            "--max-attempts",
            "2",
            # Only the queue brings messages back: no lease expiry, no republishing.
            "--lease-seconds",
            "600",
            "--publish-grace-seconds",
            "600",
        ],
    )
    try:
        url = cluster.start_api()
        batch = str(uuidlib.uuid4())
        with cluster.client() as client:
            created = client.create(
                [{**LARGE, "batch": batch}, *(small_task(batch, i) for i in range(4))]
            )
            deadly, good = created[0]["uuid"], [r["uuid"] for r in created[1:]]
            everyone = [deadly, *good]

            # Attempt 1: the whole bundle is claimed; the deadly task renders first.
            doomed = cluster.start_worker("doomed-1", "--render-threads", "1")
            wait_until(
                lambda: attempts(client, everyone) == [1] * 5, 60, message="the bundle claimed"
            )
            doomed.kill()
            assert client.get(deadly)["status"] == "running", "killed after the render"

            # Attempt 2: the bundle is back, split; the deadly task is claimed alone
            # (bundle-mates split off before it may be rendered already).
            def deadly_claimed_alone() -> bool:
                # Mates first, then the deadly task: seen in this order, "mates
                # released (or done) and the deadly task running its second
                # attempt" can only be the split's single claim, never the
                # bundle's second claim caught before its release.
                mates = [client.get(uuid) for uuid in good]
                released = all(
                    m["status"] == "done" or (m["status"] == "queued" and m["attempts"] == 1)
                    for m in mates
                )
                record = client.get(deadly)
                return released and record["attempts"] == 2 and record["status"] == "running"

            doomed = cluster.start_worker("doomed-2", "--render-threads", "1")
            wait_until(deadly_claimed_alone, 60, message="the deadly task claimed alone")
            doomed.kill()
            assert "split a bundle into 5 message(s)" in doomed.tail(200), doomed.tail()

            survivor = cluster.start_worker("survivor")
            wait_finished(client, batch, 5, timeout=120, logs=cluster.logs)
            records = {uuid: client.get(uuid) for uuid in everyone}
        assert records[deadly]["status"] == "failed", records[deadly]
        assert "gave up after 2 attempts" in records[deadly]["error"], records[deadly]
        for uuid in good:
            assert records[uuid]["generated_by"] in ("doomed-2", "survivor"), records[uuid]
            assert records[uuid]["attempts"] == 2, records[uuid]
        assert survivor.alive()
        assert_done_once(url, good, database_url=database_url)
    finally:
        cluster.stop()


@pytest.mark.servers
def test_a_frozen_worker_loses_its_message_to_another(tmp_path, rabbitmq_url):
    """SIGSTOP: the process lives and its socket stays open, but it sends nothing.

    Only AMQP heartbeats tell RabbitMQ the worker is gone (TCP would take many
    minutes): the connection is closed after about two missed intervals and
    its unacknowledged message goes to another worker.
    """
    data = tmp_path / "data"
    database_url = embedded_database_url(data)
    cluster = FaultCluster(
        database_url,
        rabbitmq_url + "?heartbeat=2",
        tmp_path,
        data,
        # A lease far longer than the test: the reconciler cannot explain recovery.
        extra_api_args=["--band-cost", NOT_BANDED, "--lease-seconds", "600"],
    )
    frozen = None
    try:
        url = cluster.start_api()
        frozen = cluster.start_worker("frozen", "--render-threads", "1")
        wait_until(lambda: "consuming from" in frozen.tail(50), 60, message="consuming")
        batch = str(uuidlib.uuid4())
        with cluster.client() as client:
            large = client.create([{**LARGE, "batch": batch}])[0]["uuid"]
            wait_until(
                lambda: client.get(large)["status"] == "running", 60, message="the task claimed"
            )
            frozen.signal(signal.SIGSTOP)
            frozen_at = time.monotonic()
            other = cluster.start_worker("other", "--render-threads", "1")
            wait_until(
                lambda: client.get(large)["attempts"] == 2,
                60,
                message="the task claimed by another worker",
            )
            taken_after = time.monotonic() - frozen_at
            wait_finished(client, batch, 1, timeout=120, logs=cluster.logs)
            record = client.get(large)
        assert record["generated_by"] == "other", record
        # Two heartbeats of 2 s, plus starting a worker on a loaded machine.
        assert taken_after < 30, f"redelivered {taken_after:.1f}s after the worker froze"
        assert other.alive()
        assert_done_once(url, [large], database_url=database_url)
        print(f"a frozen worker's message went to another after {taken_after:.1f}s")
    finally:
        if frozen is not None:
            frozen.kill()  # SIGKILL ends a stopped process; SIGTERM would wait for SIGCONT
        cluster.stop()
