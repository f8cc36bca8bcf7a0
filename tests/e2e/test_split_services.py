"""API + workers as separate processes against this machine's real RabbitMQ and databases.

After each run the Prometheus metrics of every process (each API and each
worker keeps its own registry and is scraped on its own port) are compared
with the database: per-process counters add up to what the database holds,
and the gauges read from the database agree on every API instance.
"""

from __future__ import annotations

import collections
import hashlib
import socket
import time
import uuid as uuidlib
from collections.abc import Callable

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from faafo.config import embedded_database_url, embedded_transport_url
from support.cluster import Cluster, wait_all_finished
from support.processes import free_port

pytestmark = pytest.mark.servers

STATUSES = ("queued", "running", "done", "failed")
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


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


def scrape(url: str) -> Samples:
    """Every sample of one process's /metrics page, parsed as Prometheus parses it."""
    response = httpx.get(f"{url}/metrics", timeout=30)
    assert response.status_code == 200, response.text
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def eventually(check: Callable[[], None], timeout: float = 60) -> None:
    """Run ``check`` until it passes; a counter may be bumped just after the commit it counts."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            check()
            return
        except AssertionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def assert_metrics_agree_with_database(
    apis: list[str], workers: dict[str, str], rows: list[dict], created: int
) -> None:
    """The counters of every process against the database, after a run without faults.

    ``rows`` is the GET /v1/fractal listing of the whole (fresh) database,
    ``workers`` maps each worker's name to its metrics address.
    """
    done_by = collections.Counter(r["generated_by"] for r in rows if r["status"] == "done")
    assert set(done_by) == set(workers), done_by
    stats = httpx.get(f"{apis[0]}/v1/stats", timeout=30).json()
    assert {w["name"]: w["done"] for w in stats["workers"]} == dict(done_by)

    def check() -> None:
        scraped = [scrape(url) for url in apis]
        for samples in scraped:  # read from the database: the same on every instance
            for status in STATUSES:
                assert value(samples, "faafo_tasks", status=status) == stats["counts"].get(
                    status, 0
                ), status
            for worker, done in done_by.items():
                assert value(samples, "faafo_tasks_done_by_worker", worker=worker) == done
            assert value(samples, "faafo_ready") == 1
        # Per process: they add up across the instances.
        assert sum(value(s, "faafo_tasks_created_total") for s in scraped) == created
        assert sum(value(s, "faafo_results_duplicate_total") for s in scraped) == 0
        for worker, done in done_by.items():
            completed = sum(value(s, "faafo_tasks_completed_total", worker=worker) for s in scraped)
            assert completed == done, (worker, completed, done)
            own = scrape(workers[worker])
            assert value(own, "faafo_worker_tasks_total", worker=worker, outcome="rendered") == done
            assert value(own, "faafo_worker_tasks_total", worker=worker, outcome="failed") == 0

    eventually(check)


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
        metrics = {}
        for n in (1, 2):
            port = free_port()
            cluster.start_worker(f"worker-{n}", "--metrics-port", str(port))
            metrics[f"worker-{n}"] = f"http://127.0.0.1:{port}"
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
        assert_metrics_agree_with_database(cluster.endpoints, metrics, rows, created=40)
    finally:
        cluster.stop()


def test_rabbitmq_and_postgresql(tmp_path, rabbitmq_url, postgres_url):
    run_pipeline(tmp_path, postgres_url, rabbitmq_url)


def test_rabbitmq_and_mariadb(tmp_path, rabbitmq_url, mariadb_url):
    run_pipeline(tmp_path, mariadb_url, rabbitmq_url)


def wait_consumers(transport_url: str, count: int, cluster: Cluster, timeout: float = 60) -> None:
    """Until ``count`` workers consume the task queue, so that both get messages."""
    from kombu import Connection, Exchange, Queue

    deadline = time.monotonic() + timeout
    with Connection(transport_url) as connection:
        queue = Queue("normal", Exchange("tasks"), routing_key="normal")(connection.channel())
        while queue.queue_declare(passive=True).consumer_count < count:
            assert time.monotonic() < deadline, f"fewer than {count} consumers\n{cluster.logs()}"
            time.sleep(0.2)


def test_two_api_processes_share_one_database(tmp_path, rabbitmq_url, postgres_url):
    """Two API processes, each with its own registry: scraped apart, they add up.

    Tasks are created through both, and each worker delivers to a different
    API first, so every per-process counter has something on both instances.
    """
    cluster = Cluster(
        postgres_url,
        rabbitmq_url,
        tmp_path,
        tmp_path / "data",
        extra_api_args=["--max-bundle-tasks", "4"],
    )
    try:
        first, second = cluster.start_api(), cluster.start_api()
        metrics = {}
        for name, endpoints in (("worker-1", f"{first},{second}"),
                                ("worker-2", f"{second},{first}")):
            port = free_port()
            # The last --endpoint-url wins: worker-2 talks to the second API first.
            cluster.start_worker(name, "--endpoint-url", endpoints, "--metrics-port", str(port))
            metrics[name] = f"http://127.0.0.1:{port}"
        wait_consumers(rabbitmq_url, 2, cluster)
        batch = str(uuidlib.uuid4())
        tasks = small_tasks(batch, 30)
        created = httpx.post(f"{first}/v1/fractal", json=tasks[:20]).json()["objects"]
        created += httpx.post(f"{second}/v1/fractal", json=tasks[20:]).json()["objects"]
        for row in created:
            assert httpx.get(f"{second}/v1/fractal/{row['uuid']}").json()["uuid"] == row["uuid"]
        with cluster.client(1) as client:
            wait_all_finished(client, batch, 30, timeout=120, cluster=cluster)
            rows = list(client.iter_all(batch=batch))

        per_api = [scrape(url) for url in (first, second)]
        assert [value(s, "faafo_tasks_created_total") for s in per_api] == [20, 10]
        creates = {"method": "POST", "route": "/v1/fractal", "status": "201"}
        assert [value(s, "faafo_http_requests_total", **creates) for s in per_api] == [1, 1]
        assert [value(s, "faafo_http_request_duration_seconds_count", **creates)
                for s in per_api] == [1, 1]
        stored = [sum(v for (name, _), v in s.items() if name == "faafo_tasks_completed_total")
                  for s in per_api]
        assert all(stored) and sum(stored) == 30, f"results stored per API: {stored}"
        assert_metrics_agree_with_database([first, second], metrics, rows, created=30)

        deleted = created[0]["uuid"]
        assert httpx.delete(f"{second}/v1/fractal/{deleted}").status_code == 204
        assert httpx.get(f"{first}/v1/fractal/{deleted}").status_code == 404
        listing = [
            httpx.get(f"{url}/v1/fractal", params={"batch": batch}).json()
            for url in (first, second)
        ]
        assert listing[0] == listing[1] and listing[0]["num_results"] == 29
        # The database gauges follow at once on the instance that did not delete.
        assert [value(scrape(url), "faafo_tasks", status="done") for url in (first, second)] == [
            29,
            29,
        ]
    finally:
        cluster.stop()


def test_embedded_queue_shared_by_separate_processes(tmp_path):
    data = tmp_path / "data"
    run_pipeline(
        tmp_path,
        embedded_database_url(data),
        embedded_transport_url(data),
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


def test_worker_whose_metrics_port_is_taken_still_renders(tmp_path):
    """A configuration naming a metrics port (install.sh's does) read by a second worker.

    The port is taken (here by a plain listening socket): the worker says so
    and renders anyway, without metrics, instead of dying in a restart loop.
    """
    data = tmp_path / "data"
    cluster = Cluster(
        embedded_database_url(data),
        embedded_transport_url(data),
        tmp_path,
        data,
    )
    with socket.socket() as taken:
        taken.bind(("0.0.0.0", 0))
        taken.listen()
        port = taken.getsockname()[1]
        try:
            cluster.start_api()
            worker = cluster.start_worker("worker-1", "--metrics-port", str(port))
            batch = str(uuidlib.uuid4())
            with cluster.client() as client:
                client.create(small_tasks(batch, 6))
                status = wait_all_finished(client, batch, 6, timeout=120, cluster=cluster)
                rows = list(client.iter_all(batch=batch))
            assert status["counts"] == {"done": 6}, status
            assert {r["generated_by"] for r in rows} == {"worker-1"}
            assert worker.alive(), worker.tail()
            assert f"metrics not served on 0.0.0.0:{port}" in worker.tail(500), worker.tail()
        finally:
            cluster.stop()
