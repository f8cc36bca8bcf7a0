"""Scenario 2.3: restart RabbitMQ during a run of 200 tasks.

The broker is this test's own node (restarting the machine's shared one would
break the tests running beside it). Queue and messages are durable and
persistent, so what was queued survives the restart; messages held by
workers come back unacknowledged; tasks created while the broker is down are
committed and published later by the reconciler. Nobody is restarted by
hand: the API and the workers reconnect by themselves.
"""

from __future__ import annotations

import threading
import time
import uuid as uuidlib

import httpx
import pytest

from faafo.config import embedded_database_url
from support.faults import (
    FaultCluster,
    assert_done_once,
    batch_total,
    count_done,
    small_task,
    wait_finished,
)
from support.own_servers import OwnRabbitMQ
from support.processes import wait_until

pytestmark = [pytest.mark.slow, pytest.mark.servers]

# About 0.2 s each on one thread: 200 of them keep two workers busy for ~20 s,
# so the restart lands in the middle of the run.
TASK = {
    "width": 400,
    "height": 400,
    "iterations": 5000,
    "kind": "mandelbrot",
    "xa": -0.75,
    "xb": -0.74,
    "ya": 0.1,
    "yb": 0.11,
}


@pytest.fixture
def rabbitmq(tmp_path):
    node = OwnRabbitMQ(tmp_path / "rabbitmq")
    try:
        node.start()
        yield node
    finally:
        node.cleanup()


def test_rabbitmq_restart_during_200_tasks(tmp_path, rabbitmq):
    data = tmp_path / "data"
    database_url = embedded_database_url(data)
    cluster = FaultCluster(
        database_url,
        rabbitmq.url,
        tmp_path,
        data,
        extra_api_args=[
            "--max-bundle-tasks",
            "2",  # 100 messages in flight, not 4
            "--publish-grace-seconds",
            "2",
            "--reconcile-interval",
            "1",
        ],
    )
    try:
        url = cluster.start_api()
        for name in ("w1", "w2"):
            cluster.start_worker(name, "--render-threads", "1")
        batch, during = str(uuidlib.uuid4()), str(uuidlib.uuid4())
        with cluster.client() as client:
            uuids = [
                r["uuid"]
                for r in client.create(
                    [small_task(batch, i, **{**TASK, "yb": 0.11 + i / 1e4}) for i in range(200)]
                )
            ]
            wait_until(lambda: count_done(client, batch) >= 20, 60, message="20 tasks done")
            rabbitmq.stop()
            stopped_at = time.monotonic()
            assert count_done(client, batch) < 200, "the run ended before the broker stopped"

            ready = httpx.get(f"{url}/readyz", timeout=30)
            assert ready.status_code == 503 and "queue" in ready.json(), ready.text
            # Tasks created while the broker is away: committed now, published when
            # it is back. (In a thread, so the poller keeps going.)
            answer: dict[str, httpx.Response] = {}
            creating = threading.Thread(
                target=lambda: answer.update(
                    created=httpx.post(
                        f"{url}/v1/fractal",
                        json=[small_task(during, i) for i in range(10)],
                        timeout=90,
                    )
                )
            )
            creating.start()
            wait_until(lambda: batch_total(client, during) == 10, 30, message="created while down")
            time.sleep(max(0.0, 5 - (time.monotonic() - stopped_at)))  # ~5 s down

            rabbitmq.start()
            back_at = time.monotonic()
            creating.join(timeout=90)
            created = answer.get("created")
            assert created is not None and created.status_code == 201, created
            uuids += [r["uuid"] for r in created.json()["objects"]]
            wait_finished(client, during, 10, timeout=90, logs=cluster.logs)
            during_done = time.monotonic() - back_at
            wait_finished(client, batch, 200, timeout=120, logs=cluster.logs)
            all_done = time.monotonic() - back_at
        for service in (*cluster.apis, *cluster.workers):
            assert service.alive(), f"{service.name} exited:\n{service.tail()}"
        for worker in cluster.workers:
            assert "queue connection lost" in worker.tail(2000), f"{worker.name} saw no outage"
        assert_done_once(url, uuids, database_url=database_url)
        print(
            f"after the broker came back: tasks created meanwhile done in {during_done:.1f}s, "
            f"all done in {all_done:.1f}s"
        )
    finally:
        cluster.stop()


def test_create_answers_promptly_while_the_broker_is_down(tmp_path, rabbitmq):
    """Tasks are committed before publishing: with the broker away, say 201 at once."""
    data = tmp_path / "data"
    cluster = FaultCluster(embedded_database_url(data), rabbitmq.url, tmp_path, data)
    try:
        url = cluster.start_api()
        rabbitmq.stop()
        started = time.monotonic()
        ready = httpx.get(f"{url}/readyz", timeout=30)
        ready_seconds = time.monotonic() - started
        assert ready.status_code == 503
        started = time.monotonic()
        try:
            created = httpx.post(
                f"{url}/v1/fractal", json=[small_task("down", 0)], timeout=10
            ).status_code
        except httpx.TimeoutException:
            created = "no answer in 10 s"
        create_seconds = time.monotonic() - started
        assert created == 201 and create_seconds < 5, (
            f"create while the broker is down: {created} after {create_seconds:.1f}s "
            f"(readyz: {ready_seconds:.1f}s)"
        )
    finally:
        for api in cluster.apis:
            api.kill()  # not stop: a graceful stop would wait for the stuck publish
        cluster.stop()
