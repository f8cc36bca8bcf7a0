"""Claims the API refuses, and endpoints that are no API at all.

What the worker does depends on what the refusal blames. A wrong worker
token (401/403) or an address that is not a faafo API (a redirect, an HTML
page) blame the worker's set-up: it keeps the message and retries with a
bounded back-off, with one clear error line, instead of the ~16 refused
claims a second it used to send. Any other 4xx on a claim blames the message
(a bundle longer than a claim may name, a body over the API's limit): it can
never be claimed, so it is poison -- its tasks are failed with the reason, it
is dead-lettered, and the tasks behind it are rendered.
"""

from __future__ import annotations

import contextlib
import json
import re
import signal
import threading
import time
import uuid as uuidlib
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
from kombu import Consumer, Producer
from prometheus_client.parser import text_string_to_metric_families

from faafo.client.http import FaafoClient
from faafo.messaging import broker
from faafo.messaging.messages import MAX_BUNDLE_TASKS
from faafo.messaging.topology import DEAD_QUEUE, TASK_EXCHANGE, TASK_QUEUE
from faafo.worker.api_client import ApiUnavailable, WorkerApi
from support.faults import FaultCluster, assert_done_once, embedded_urls, small_task, wait_finished
from support.processes import Service, free_port, wait_until

pytestmark = pytest.mark.slow

CLIENT = "client-token-5d20"
RIGHT = "right-worker-token-1f6b"
WRONG = "wrong-worker-token-93ac"



def ready_messages(transport_url: str, queue=TASK_QUEUE) -> int:  # type: ignore[no-untyped-def]
    """Messages waiting in ``queue`` (not those a worker holds), without taking any."""
    connection = broker.connection(transport_url)
    try:
        return int(queue(connection.channel()).queue_declare(passive=True).message_count)
    finally:
        connection.release()


def dead_letters(transport_url: str, expected: int, timeout: float = 30) -> list[tuple[str, int]]:
    """(reason, number of tasks in the body) of each dead letter, consuming them."""
    got: list[tuple[str, int]] = []
    connection = broker.connection(transport_url)
    try:

        def take(message) -> None:  # type: ignore[no-untyped-def]
            body = json.loads(message.body)
            size = len(body) if isinstance(body, list) else 1
            got.append(((message.headers or {}).get("x-faafo-reason", ""), size))
            message.ack()

        with Consumer(connection.channel(), queues=[DEAD_QUEUE], on_message=take, accept=None):
            deadline = time.monotonic() + timeout
            while len(got) < expected and time.monotonic() < deadline:
                with contextlib.suppress(TimeoutError):
                    connection.drain_events(timeout=0.2)
    finally:
        connection.release()
    return got


def http_requests(url: str) -> Counter:
    """The API's request counter by (method, route, status), from its /metrics."""
    counts: Counter = Counter()
    for family in text_string_to_metric_families(httpx.get(f"{url}/metrics", timeout=30).text):
        for sample in family.samples:
            if sample.name == "faafo_http_requests_total":
                labels = sample.labels
                counts[(labels["method"], labels["route"], labels["status"])] += sample.value
    return counts


def start_worker(cluster: FaultCluster, name: str, token: str, *extra: str) -> Service:
    """A worker like ``cluster.start_worker``, its token in the environment (not argv)."""
    worker = Service(
        name,
        "faafo.worker.main",
        [*cluster.common(), "--endpoint-url", ",".join(cluster.endpoints), "--name", name, *extra],
        cluster.log_dir,
        env={"FAAFO_WORKER_TOKEN": token},
    )
    worker.start()
    cluster.workers.append(worker)
    return worker


def test_wrong_worker_token_backs_off_and_keeps_the_message(tmp_path):
    database_url, transport_url = embedded_urls(tmp_path / "data")
    cluster = FaultCluster(
        database_url,
        transport_url,
        tmp_path,
        tmp_path / "data",
        extra_api_args=["--publish-grace-seconds", "600"],
        api_env={"FAAFO_CLIENT_TOKEN": CLIENT, "FAAFO_WORKER_TOKEN": RIGHT},
    )
    try:
        url = cluster.start_api()
        worker = start_worker(cluster, "w1", WRONG)
        batch = str(uuidlib.uuid4())
        with FaafoClient(url, token=CLIENT) as client:
            uuid = client.create([small_task(batch, 0)])[0]["uuid"]

            def refused() -> float:
                return http_requests(url)[("POST", "/v1/worker/claim", "403")]

            wait_until(lambda: refused() >= 1, 60, message="a refused claim")
            before = refused()
            time.sleep(10)
            during = refused() - before
            # Back-off 1, 2, 4, 8 s: three more in 10 s. Without it: hundreds.
            assert 1 <= during <= 6, f"{during} refused claims in 10 s\n{worker.tail()}"
            record = client.get(uuid)
            assert record["status"] == "queued" and record["attempts"] == 0, record
        text = worker.log_path.read_text()
        errors = [line for line in text.splitlines() if " ERROR " in line]
        assert len(errors) == 1 and "403" in errors[0] and "worker token" in errors[0], errors
        assert WRONG not in text and RIGHT not in text, "a token in the worker's log"
        assert ready_messages(transport_url, DEAD_QUEUE) == 0, "nothing dead-lettered"

        # The message was kept, not dropped: stopping gives it back at once...
        stopped = time.monotonic()
        worker.signal(signal.SIGTERM)
        assert worker.process.wait(timeout=30) == 0  # type: ignore[union-attr]
        assert time.monotonic() - stopped < 15, "the back-off does not delay a stop"
        assert ready_messages(transport_url) == 1
        # ... and a worker with the right token renders it (nobody republished it).
        start_worker(cluster, "w2", RIGHT)
        with FaafoClient(url, token=CLIENT) as client:
            wait_finished(client, batch, 1, timeout=60, logs=cluster.logs)
            record = client.get(uuid)
        assert record["generated_by"] == "w2" and record["attempts"] == 1, record
        assert_done_once(url, [uuid], database_url=database_url, worker_token=RIGHT)
    finally:
        cluster.stop()


def test_claim_refused_as_too_large_is_poison_and_the_queue_moves_on(tmp_path):
    """A bundle whose claim the API refuses (413 here) fails its tasks, once."""
    database_url, transport_url = embedded_urls(tmp_path / "data")
    cluster = FaultCluster(
        database_url,
        transport_url,
        tmp_path,
        tmp_path / "data",
        extra_api_args=["--publish-grace-seconds", "600"],
    )
    try:
        port = free_port()
        url = cluster.start_api(port)
        victims = str(uuidlib.uuid4())
        with cluster.client() as client:
            # Small and created together: one bundle message of 40 tasks.
            bundled = [
                r["uuid"] for r in client.create([small_task(victims, i) for i in range(40)])
            ]
        assert ready_messages(transport_url) == 1
        cluster.apis[0].stop()
        # Now a claim naming 40 uuids (about 1.6 KB) is over the API's body limit.
        cluster.restart_api(port, "--max-request-bytes", "1024")
        worker = cluster.start_worker("w1")
        batch = str(uuidlib.uuid4())
        with cluster.client() as client:
            wait_finished(client, victims, 40, timeout=60, logs=cluster.logs)
            nxt = client.create([small_task(batch, 0)])[0]["uuid"]
            wait_finished(client, batch, 1, timeout=60, logs=cluster.logs)
            records = [client.get(uuid) for uuid in bundled]
        problems = [
            r
            for r in records
            if r["status"] != "failed" or "unusable task message" not in (r["error"] or "")
        ]
        assert not problems, problems[:3]
        assert "413" in records[0]["error"], records[0]["error"]
        assert_done_once(url, [nxt], database_url=database_url)
        dead = dead_letters(transport_url, expected=1)
        assert len(dead) == 1 and dead[0][1] == 40 and "refused to claim" in dead[0][0], dead
        settled = worker.tail(2000).count("failed 40 task(s) of an unusable message")
        assert settled == 1, f"the bundle was claimed and failed {settled} times, not once"
    finally:
        cluster.stop()


def test_bundle_beyond_the_claim_limit_is_poison(tmp_path):
    """The reported case: one message of 10001 tasks, and a real task queued behind it."""
    database_url, transport_url = embedded_urls(tmp_path / "data")
    total = MAX_BUNDLE_TASKS + 1
    cluster = FaultCluster(
        database_url,
        transport_url,
        tmp_path,
        tmp_path / "data",
        extra_api_args=["--publish-grace-seconds", "600", "--max-tasks-per-request", str(total)],
    )
    try:
        url = cluster.start_api()
        victims, batch = str(uuidlib.uuid4()), str(uuidlib.uuid4())
        tasks = [small_task(victims, i, uuid=str(uuidlib.uuid4())) for i in range(total)]
        with cluster.client() as client:
            client.create(tasks)
        # Replace the API's bundles by one message naming every task, as a
        # publisher with a larger bundle size (or none at all) would send it.
        connection = broker.connection(transport_url)
        try:
            channel = connection.channel()
            TASK_QUEUE(channel).purge()
            body = [{k: v for k, v in t.items() if k != "batch"} for t in tasks]
            Producer(channel, exchange=TASK_EXCHANGE, routing_key="normal").publish(
                json.dumps(body), content_type="application/json", delivery_mode=2
            )
        finally:
            connection.release()
        with cluster.client() as client:
            nxt = client.create([small_task(batch, 0)])[0]["uuid"]
        worker = cluster.start_worker("w1")
        with cluster.client() as client:
            wait_finished(client, batch, 1, timeout=120, logs=cluster.logs)
            status = wait_finished(client, victims, total, timeout=120, logs=cluster.logs)
        assert status["counts"] == {"failed": total}, status
        assert_done_once(url, [nxt], database_url=database_url)
        dead = dead_letters(transport_url, expected=1)
        assert len(dead) == 1 and dead[0][1] == total, dead
        assert f"{total} tasks exceeds the limit of {MAX_BUNDLE_TASKS}" in dead[0][0], dead
        assert "could not claim" not in worker.tail(2000)
    finally:
        cluster.stop()


class NotAnApi:
    """An HTTP server answering every request with a redirect or an HTML page, counting them."""

    def __init__(self, answer: str) -> None:
        self.requests: Counter = Counter()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                owner.requests[self.path] += 1
                length = int(self.headers.get("content-length") or 0)
                self.rfile.read(length)
                if answer == "redirect":
                    self.send_response(302)
                    self.send_header("Location", "https://portal.example/login")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                page = b"<html><body>Welcome to the intranet</body></html>"
                self.send_response(200)
                self.send_header("Content-Type", "text/html")
                self.send_header("Content-Length", str(len(page)))
                self.end_headers()
                self.wfile.write(page)

            do_GET = do_POST = do_PUT = _answer

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> NotAnApi:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.mark.parametrize("answer", ["redirect", "html"])
def test_an_answer_that_is_no_api_answer_is_retried_then_unavailable(answer):
    with NotAnApi(answer) as fake:
        api = WorkerApi([fake.url], "w1", retry_seconds=1.0, token="secret-xyz")
        try:
            started = time.monotonic()
            with pytest.raises(ApiUnavailable) as raised:
                api.claim([str(uuidlib.uuid4())])
            elapsed = time.monotonic() - started
        finally:
            api.close()
    message = str(raised.value)
    assert (
        "redirects to https://portal.example/login" if answer == "redirect" else "not JSON"
    ) in (message)
    assert "faafo API" in message and "secret-xyz" not in message
    tries = fake.requests["/v1/worker/claim"]
    assert 2 <= tries <= 6 and elapsed < 5, f"{tries} tries in {elapsed:.1f}s"


@pytest.mark.parametrize("answer", ["redirect", "html"])
def test_worker_pointed_at_something_else_keeps_the_message_without_a_hot_loop(tmp_path, answer):
    database_url, transport_url = embedded_urls(tmp_path / "data")
    cluster = FaultCluster(
        database_url,
        transport_url,
        tmp_path,
        tmp_path / "data",
        extra_api_args=["--publish-grace-seconds", "600"],
    )
    try:
        url = cluster.start_api()
        batch = str(uuidlib.uuid4())
        with cluster.client() as client:
            uuid = client.create([small_task(batch, 0)])[0]["uuid"]
        with NotAnApi(answer) as fake:
            worker = cluster.start_worker(
                "lost", "--endpoint-url", fake.url, "--upload-retry-seconds", "0.5"
            )
            wait_until(lambda: fake.requests["/v1/worker/claim"] >= 1, 60, message="a claim")
            time.sleep(8)
            tries = fake.requests["/v1/worker/claim"]
            worker.signal(signal.SIGTERM)
            assert worker.process.wait(timeout=30) == 0  # type: ignore[union-attr]
        # Back-off: a handful of claims in 8 s (it used to be hundreds).
        assert tries <= 20, f"{tries} claims in 8 s\n{worker.tail()}"
        assert re.search(r"could not claim 1 task\(s\): .*faafo API", worker.tail(200))
        with cluster.client() as client:
            assert client.get(uuid)["status"] == "queued"
            cluster.start_worker("w2")
            wait_finished(client, batch, 1, timeout=60, logs=cluster.logs)
            record = client.get(uuid)
        assert record["generated_by"] == "w2" and record["attempts"] == 1, record
        assert_done_once(url, [uuid], database_url=database_url)
    finally:
        cluster.stop()
