"""API + workers as separate processes against this machine's real RabbitMQ and databases."""

from __future__ import annotations

import hashlib
import uuid as uuidlib

import httpx
import pytest

from support.cluster import Cluster, wait_all_finished

pytestmark = pytest.mark.servers


def small_tasks(batch: str, count: int) -> list[dict]:
    return [
        {
            "width": 48 + i % 5,
            "height": 40,
            "iterations": 64,
            "xa": -1.6,
            "xb": 1.6,
            "ya": -1.0,
            "yb": 1.0,
            "batch": batch,
        }
        for i in range(count)
    ]


def run_pipeline(tmp_path, database_url: str, transport_url: str, apis: int = 1) -> None:
    cluster = Cluster(
        database_url,
        transport_url,
        tmp_path,
        tmp_path / "data",
        extra_api_args=["--max-bundle-tasks", "4"],
    )
    try:
        for _ in range(apis):
            cluster.start_api()
        for _ in range(2):
            cluster.start_worker()
        batch = str(uuidlib.uuid4())
        with cluster.client() as client:
            created = client.create(small_tasks(batch, 40))
            status = wait_all_finished(client, batch, 40, timeout=120, cluster=cluster)
            assert status["counts"] == {"done": 40}, status
            rows = list(client.iter_all(batch=batch))
        assert {r["uuid"] for r in rows} == {r["uuid"] for r in created}
        assert {r["generated_by"] for r in rows} == {"worker-1", "worker-2"}, (
            "both workers took work"
        )
        for row in rows[:5]:
            for endpoint in cluster.endpoints:
                png = httpx.get(f"{endpoint}/fractal/{row['uuid']}").content
                assert hashlib.sha256(png).hexdigest() == row["checksum"]
            assert row["c_real"] is not None and row["started_at"] and row["finished_at"]
    finally:
        cluster.stop()


def test_rabbitmq_and_postgresql(tmp_path, rabbitmq_url, postgres_url):
    run_pipeline(tmp_path, postgres_url, rabbitmq_url)


def test_rabbitmq_and_mariadb(tmp_path, rabbitmq_url, mariadb_url):
    run_pipeline(tmp_path, mariadb_url, rabbitmq_url)


def test_two_api_processes_share_one_database(tmp_path, rabbitmq_url, postgres_url):
    cluster = Cluster(postgres_url, rabbitmq_url, tmp_path, tmp_path / "data")
    try:
        first, second = cluster.start_api(), cluster.start_api()
        cluster.start_worker()
        batch = str(uuidlib.uuid4())
        created = httpx.post(f"{first}/v1/fractal", json=small_tasks(batch, 6)).json()["objects"]
        for row in created:
            assert httpx.get(f"{second}/v1/fractal/{row['uuid']}").json()["uuid"] == row["uuid"]
        with cluster.client(1) as client:
            wait_all_finished(client, batch, 6, timeout=60, cluster=cluster)
        deleted = created[0]["uuid"]
        assert httpx.delete(f"{second}/v1/fractal/{deleted}").status_code == 204
        assert httpx.get(f"{first}/v1/fractal/{deleted}").status_code == 404
        listing = [
            httpx.get(f"{url}/v1/fractal", params={"batch": batch}).json()
            for url in (first, second)
        ]
        assert listing[0] == listing[1] and listing[0]["num_results"] == 5
    finally:
        cluster.stop()


def test_embedded_queue_shared_by_separate_processes(tmp_path):
    data = tmp_path / "data"
    run_pipeline(
        tmp_path,
        f"sqlite:///{data / 'faafo.sqlite3'}",
        f"embedded://{data / 'queue.sqlite3'}",
        apis=2,
    )


def test_reference_topology_and_tasks_published_before_any_worker(
    tmp_path, rabbitmq_url, postgres_url
):
    """The original declared the queue only in workers and lost earlier tasks; ours waits."""
    from kombu import Connection, Exchange, Queue

    cluster = Cluster(postgres_url, rabbitmq_url, tmp_path, tmp_path / "data")
    try:
        cluster.start_api()
        batch = str(uuidlib.uuid4())
        with cluster.client() as client:
            client.create(small_tasks(batch, 3))
            with Connection(rabbitmq_url) as connection:
                channel = connection.channel()
                # Passive declarations fail unless these exist exactly so.
                Exchange("tasks", type="direct", durable=True)(channel).declare(passive=True)
                declared = Queue("normal", Exchange("tasks"), routing_key="normal")(
                    channel
                ).queue_declare(passive=True)
                assert declared.message_count >= 1
            cluster.start_worker()
            status = wait_all_finished(client, batch, 3, timeout=60, cluster=cluster)
        assert status["counts"] == {"done": 3}
    finally:
        cluster.stop()
