"""The seed's section 4 on separate hosts: work spreads, and the app survives losing hosts.

Every request is made from the ``client`` host through the load balancer, as a
user would; workers deliver through the load balancer too, except where a test
gives them a list of API addresses. Prometheus scrapes from the ``monitor`` host.
"""

from __future__ import annotations

import collections
import subprocess
import sys
import threading
import time
import uuid as uuidlib
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from multihost.topology import (
    API_PORT,
    LB,
    SERVICES,
    WORKER_METRICS_PORT,
    Topology,
    api_address,
    worker_address,
)

# Under xdist these tests may land on several workers: they share one topology
# and take turns (see conftest.py).
pytestmark = [pytest.mark.multihost, pytest.mark.timeout(300)]

# The seahorse valley: costly everywhere, so a task's time is predictable.
WINDOW = {"kind": "mandelbrot", "xa": -0.8, "xb": -0.6, "ya": 0.0, "yb": 0.2}
# Each sent alone (above the API's bundle cost), a fraction of a second to render.
SMALL = {**WINDOW, "width": 500, "height": 500, "iterations": 200}
# About a second on one core, still below the size at which a task is split into bands.
MEDIUM = {**WINDOW, "width": 1000, "height": 1000, "iterations": 1900}
# Split into 16 bands (2 000 000 000 pixel-iterations each).
LARGE = {**WINDOW, "width": 4000, "height": 4000, "iterations": 2000}


def tasks(template: dict[str, Any], count: int) -> tuple[str, list[dict[str, Any]]]:
    batch = str(uuidlib.uuid4())
    return batch, [{**template, "batch": batch} for _ in range(count)]


# Listens on ADDRESS at each PORT, says so, and stays until killed.
LISTEN = """
import socket, sys, time
held = []
for port in sys.argv[2:]:
    sock = socket.socket()
    sock.bind((sys.argv[1], int(port)))
    sock.listen()
    held.append(sock)
print("listening", flush=True)
time.sleep(600)
"""


def test_security_groups(cluster: Topology) -> None:
    """Who may open a connection to whom: the shipped firewall files, as the seed's groups say."""
    client, api, worker = cluster.agent("client"), cluster.agent("api-1"), cluster.agent("worker-1")
    lb, monitor = cluster.agent("lb"), cluster.agent("monitor")
    assert client.can_connect(LB, 80)
    # API hosts answer the balancer, workers given a list of APIs, and Prometheus.
    assert not client.can_connect(api_address(1), API_PORT), "API hosts open to the outside"
    for agent in (lb, worker, monitor):
        assert agent.can_connect(api_address(1), API_PORT), agent.host.name
    for port in (5432, 5672):
        assert not client.can_connect(SERVICES, port), f"{port} open to the outside"
    assert api.can_connect(SERVICES, 5432) and api.can_connect(SERVICES, 5672)
    assert worker.can_connect(SERVICES, 5672)
    assert not worker.can_connect(SERVICES, 5432), "workers must not reach the database"
    assert not lb.can_connect(SERVICES, 5672)
    # A packaged RabbitMQ has epmd (4369) and Erlang distribution (25672) on every
    # address (here the node keeps them on 127.0.0.1): stand-ins listen on the
    # host's address, and only the host itself gets through.
    services = cluster.agent("services")
    ports = (4369, 25672)
    listener = cluster.host("services").popen(
        [sys.executable, "-c", LISTEN, SERVICES, *map(str, ports)], stdout=subprocess.PIPE)
    try:
        assert listener.stdout and listener.stdout.readline().strip() == "listening"
        for port in ports:
            assert services.can_connect(SERVICES, port), f"nothing listens on {port}"
            for agent in (client, api, worker, monitor):
                assert not agent.can_connect(SERVICES, port), f"{port} open to {agent.host.name}"
    finally:
        listener.kill()
        listener.wait(timeout=10)

    # Nothing reaches a worker from outside, even a port something listens on.
    host = cluster.host("worker-1")
    listener = host.popen([sys.executable, "-m", "http.server", "--bind", "0.0.0.0", "8000"],
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        cluster.wait(lambda: worker.can_connect(host.address, 8000), 20, "listener on worker-1")
        assert not client.can_connect(host.address, 8000)
        assert not api.can_connect(host.address, 8000)
        assert not cluster.agent("worker-2").can_connect(host.address, 8000)
    finally:
        listener.kill()
        listener.wait(timeout=10)

    # RabbitMQ has faafo's own user; guest is gone.
    check = ("import kombu, sys\n"
             "c = kombu.Connection(sys.argv[1], connect_timeout=5)\n"
             "try:\n    c.connect(); print('connected')\n"
             "except Exception as e:\n    print('refused', type(e).__name__)\n")
    guest = cluster.host("api-1").run(
        [sys.executable, "-c", check, f"amqp://guest:guest@{SERVICES}:5672/faafo"])
    assert guest.stdout.startswith("refused"), guest.stdout
    own = cluster.host("worker-1").run([sys.executable, "-c", check, cluster.transport_url])
    assert own.stdout.startswith("connected"), own.stdout


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples}


def test_prometheus_scrapes_each_process_directly(cluster: Topology) -> None:
    """install.sh gives workers a metrics port; only the Prometheus host reaches it and the APIs.

    The balancer refuses /metrics: behind it, a scrape would be any instance's.
    """
    monitor, client = cluster.agent("monitor"), cluster.agent("client")
    for n in (1, 2, 3):
        scraped = monitor.request("GET", f"http://{worker_address(n)}:{WORKER_METRICS_PORT}/metrics")
        assert scraped["status"] == 200, scraped
        assert ("faafo_worker_busy_slots", ()) in samples(scraped["text"])
    for agent in (client, cluster.agent("api-1"), cluster.agent("worker-2")):
        assert not agent.can_connect(worker_address(1), WORKER_METRICS_PORT), agent.host.name
    for n in (1, 2):
        scraped = monitor.request("GET", f"http://{api_address(n)}:{API_PORT}/metrics")
        assert scraped["status"] == 200, scraped
        assert samples(scraped["text"])[("faafo_ready", ())] == 1.0
    refused = client.request("GET", f"{cluster.url}/metrics")
    assert refused["status"] == 404 and refused["body"]["code"] == 404, refused


def test_work_spreads_evenly_over_three_workers(cluster: Topology) -> None:
    batch, new = tasks(SMALL, 30)
    created = cluster.create(new)
    status = cluster.wait_batch(batch, 30, timeout=120)
    assert status["counts"] == {"done": 30}, status
    rows = cluster.records(batch)
    assert sorted(r["uuid"] for r in rows) == sorted(r["uuid"] for r in created)
    shares = collections.Counter(r["generated_by"] for r in rows)
    print(f"\nshares of 30 tasks: {dict(sorted(shares.items()))}")
    assert set(shares) == {"worker-1", "worker-2", "worker-3"}, shares
    assert min(shares.values()) >= 5, f"uneven shares: {shares}"


class Load(threading.Thread):
    """A client that creates one task and lists, over and over, recording every failure."""

    def __init__(self, cluster: Topology, timeout: float = 30) -> None:
        super().__init__(daemon=True)
        self.cluster = cluster
        self.agent = cluster.new_agent("client")
        self.batch = str(uuidlib.uuid4())
        self.stop = threading.Event()
        self.timeout = timeout
        # (when the request was sent, what failed)
        self.failures: list[tuple[float, str]] = []
        self.created: list[tuple[float, str]] = []
        self.requests = 0

    def run(self) -> None:
        url = self.cluster.url
        try:
            while not self.stop.is_set():
                sent = time.monotonic()
                # As faafo's own client does: a create carries an Idempotency-Key,
                # so the balancer may replay it on the other API if this one dies
                # holding it (a bare POST is never replayed: it may have committed).
                made = self.agent.request("POST", f"{url}/v1/fractal", timeout=self.timeout,
                                          json={**SMALL, "width": 64, "height": 64,
                                                "batch": self.batch},
                                          headers={"Idempotency-Key": str(uuidlib.uuid4())})
                listed_at = time.monotonic()
                listed = self.agent.request("GET", f"{url}/v1/fractal", timeout=self.timeout,
                                            params={"batch": self.batch, "results_per_page": 5})
                self.requests += 2
                for what, at, answer in (("create", sent, made), ("list", listed_at, listed)):
                    if answer["status"] is None or answer["status"] >= 400:
                        self.failures.append((at, f"{what}: {answer}"))
                if made["status"] == 201:
                    self.created.append((time.monotonic(), made["body"]["uuid"]))
                time.sleep(0.05)
        finally:
            self.agent.close()


def test_api_host_lost_without_a_client_error(cluster: Topology) -> None:
    load = Load(cluster)
    load.start()
    try:
        time.sleep(3)
        cluster.host("api-1").power_off()  # SIGKILL to everything on api-1
        killed_at = time.monotonic()
        time.sleep(8)
    finally:
        load.stop.set()
        load.join(timeout=60)
    assert load.requests > 40, f"the client made only {load.requests} requests"
    assert not load.failures, f"{len(load.failures)} failed requests: {load.failures[:5]}"
    after = [u for t, u in load.created if t > killed_at]
    assert after, "no task created after api-1 went down"
    status = cluster.wait_batch(load.batch, len(load.created), timeout=90)
    assert status["counts"] == {"done": len(load.created)}, status
    assert cluster.balancer_status().get("api-1") != "UP"
    print(f"\n{load.requests} requests, none failed; {len(after)} tasks created and done "
          "after api-1 went down")


def test_api_host_unplugged_only_requests_in_flight_can_fail(cluster: Topology) -> None:
    """api-1's cable pulled: its processes live on, but its packets go nowhere.

    Unlike a dead host, nothing refuses the connections: HAProxy's connects time
    out (2 s) and are retried on api-2. A request already sent to api-1 gets no
    answer at all and cannot be retried safely, so the client (10 s timeout here)
    may see those few fail; every request made once HAProxy has marked api-1
    down succeeds, and every task created is done.
    """
    timeout = 10
    load = Load(cluster, timeout=timeout)
    load.start()
    try:
        time.sleep(3)
        cluster.network.unplug("api-1")
        unplugged_at = time.monotonic()
        cluster.wait(lambda: cluster.balancer_status().get("api-1") not in (None, "UP"), 30,
                     "HAProxy marks api-1 down", "lb")
        down_at = time.monotonic()
        # Longer than a request left hanging on api-1 can hold the client up.
        time.sleep(timeout + 8)
    finally:
        load.stop.set()
        load.join(timeout=60)
    assert load.requests > 40, f"the client made only {load.requests} requests"
    # A request can only be lost if it was sent while api-1 was unplugged but not yet
    # out of HAProxy's rotation (or just before the unplug and not answered yet).
    outside = [(round(at - unplugged_at, 1), what) for at, what in load.failures
               if not unplugged_at - timeout <= at <= down_at]
    assert not outside, f"requests failed outside the unplug window: {outside[:5]}"
    assert len(load.failures) <= 3, f"more than the requests in flight failed: {load.failures}"
    after = [u for t, u in load.created if t > down_at]
    assert after, f"no task created after api-1 was marked down; failures {load.failures}"
    status = cluster.wait_batch(load.batch, len(load.created), timeout=180)
    assert status["counts"] == {"done": len(load.created)}, status
    print(f"\n{load.requests} requests, {len(load.failures)} failed (in flight to api-1); "
          f"api-1 marked down {down_at - unplugged_at:.1f} s after the unplug; "
          f"{len(after)} tasks created and done after that")


# Opens a transaction that locks one task's row, says so, then goes silent.
HOLD_ROW = """
import sys, time
import psycopg
connection = psycopg.connect(sys.argv[1])
connection.execute("UPDATE fractals SET attempts = attempts WHERE uuid = %s", (sys.argv[2],))
print("locked", flush=True)
time.sleep(600)
"""


def test_api_host_unplugged_inside_a_transaction_does_not_hold_its_rows(
    cluster: Topology,
) -> None:
    """api-1 loses its cable while a transaction of its own holds a task's row.

    The database never hears from that session again: unless the server ends
    sessions idle in a transaction (install.sh sets 30 s), the lock stays and
    every other API's claim of the task waits on it for as long as the host is
    away. The workers are paused until the lock is in place, so that it is
    there before anyone claims the task.
    """
    workers = {name: cluster.pid(name, "faafo-worker") for name in cluster.workers}
    for name, pid in workers.items():
        cluster.host(name).run(["kill", "-STOP", str(pid)])
    holder = None
    try:
        batch, new = tasks(SMALL, 1)
        uuid = cluster.create(new)[0]["uuid"]
        dsn = cluster.database_url.replace("postgresql+psycopg://", "postgresql://")
        holder = cluster.host("api-1").popen([sys.executable, "-c", HOLD_ROW, dsn, uuid],
                                             stdout=subprocess.PIPE)
        assert holder.stdout and holder.stdout.readline().strip() == "locked"
        cluster.network.unplug("api-1")
    finally:
        for name, pid in workers.items():
            cluster.host(name).run(["kill", "-CONT", str(pid)])
    try:
        status = cluster.wait_batch(batch, 1, timeout=150)
        assert status["counts"] == {"done": 1}, status
    finally:
        holder.kill()
        holder.wait(timeout=10)


def balancer_lines_from_workers(cluster: Topology) -> int:
    """How many requests HAProxy logged from worker addresses."""
    log = cluster.host("lb").path("var/log/faafo/haproxy.log")
    text = log.read_text(errors="replace") if log.exists() else ""
    return sum(1 for line in text.splitlines() if line.startswith("10.99.0.3"))


def test_workers_given_two_apis_carry_on_when_the_first_is_unplugged(cluster: Topology) -> None:
    """Workers with ``-e http://api-1,http://api-2`` and api-1 unplugged: every task done.

    Unplugged, not stopped: the worker's connections to api-1 time out instead
    of being refused, the slow way to fail. The workers talk to the APIs
    directly (the balancer logs nothing from them), so the failover is theirs.
    """
    endpoints = ",".join(f"http://{api_address(n)}" for n in (1, 2))
    for n in (1, 2, 3):
        cluster.add_worker(n, endpoint=endpoints)
        assert cluster.endpoint_of(f"worker-{n}") == endpoints
    cluster.network.unplug("api-1")
    # Nothing answers, not even a refusal (a timeout, or "no route" once ARP gives up).
    tried = cluster.agent("worker-1").connect(api_address(1), API_PORT, timeout=2)
    assert not tried["ok"] and "Refused" not in tried["error"], tried
    through_balancer = balancer_lines_from_workers(cluster)

    batch, new = tasks(SMALL, 12)
    created = cluster.create(new)
    status = cluster.wait_batch(batch, 12, timeout=240)
    assert status["counts"] == {"done": 12}, status
    rows = cluster.records(batch)
    assert {r["uuid"] for r in rows} == {r["uuid"] for r in created}
    assert all(r["generated_by"] in cluster.workers for r in rows), rows
    assert balancer_lines_from_workers(cluster) == through_balancer, (
        "workers went through the balancer: the test proves nothing about their list")
    shares = collections.Counter(r["generated_by"] for r in rows)
    print(f"\n12 tasks done with api-1 unplugged, workers on {endpoints}: {dict(shares)}")


def test_worker_killed_and_worker_cut_off_every_task_done_once(cluster: Topology) -> None:
    batch, new = tasks(MEDIUM, 12)
    created = cluster.create(new)

    def running() -> int:
        return int(cluster.agent().ok("GET", f"{cluster.url}/v1/batch/{batch}")["counts"]
                   .get("running", 0))

    cluster.wait(lambda: running() >= 3, 60, "three tasks running", "worker-2")
    victim = cluster.pid("worker-2", "faafo-worker")
    assert victim is not None
    held = frozen_holding_a_task(cluster, "worker-2", victim, {r["uuid"] for r in created})
    cluster.host("worker-2").run(["kill", "-KILL", str(victim)])
    cluster.network.unplug("worker-3")
    time.sleep(20)
    cluster.network.plug("worker-3")

    status = cluster.wait_batch(batch, 12, timeout=180)
    assert status["counts"] == {"done": 12}, status
    rows = cluster.records(batch)
    assert len(rows) == 12 and {r["uuid"] for r in rows} == {r["uuid"] for r in created}
    for row in rows:
        image = cluster.agent().request("GET", f"{cluster.url}/fractal/{row['uuid']}")
        assert image["status"] == 200 and image["size"] == row["size"], (row, image)
    again = [r["uuid"] for r in rows if r["attempts"] > 1]
    assert set(held) <= set(again), (
        f"worker-2 held {held} when killed: each must have been claimed again", rows)
    print(f"\n{len(again)} task(s) rendered again after the failures; every one stored once; "
          f"shares {dict(collections.Counter(r['generated_by'] for r in rows))}")


def frozen_holding_a_task(cluster: Topology, name: str, pid: int, batch: set[str]) -> list[str]:
    """Freeze the worker (SIGSTOP) at a moment it holds a task of the batch; return those tasks.

    A frozen worker cannot deliver, so what the API still lists as running for
    it a second later (requests already on the wire have landed by then) is
    exactly what it holds when it is killed. If it holds nothing, it runs on
    for a moment and is frozen again.
    """
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        cluster.host(name).run(["kill", "-STOP", str(pid)])
        time.sleep(1)
        stats = cluster.agent().ok("GET", f"{cluster.url}/v1/stats", params={"recent": 50})
        held = [task["uuid"] for worker in stats["workers"] if worker["name"] == name
                for task in worker["recent"] if task["status"] == "running"
                and task["uuid"] in batch]
        if held:
            return held
        cluster.host(name).run(["kill", "-CONT", str(pid)])
        time.sleep(0.3)
    raise AssertionError(f"{name} never held a task of the batch when frozen")


def test_worker_added_during_a_run_takes_work(cluster: Topology) -> None:
    before = {name: cluster.host(name).pids() for name in ("services", "lb", "api-1", "api-2",
                                                           "worker-1", "worker-2", "worker-3")}
    batch, new = tasks(MEDIUM, 16)
    cluster.create(new)
    time.sleep(2)
    cluster.add_worker(4)
    status = cluster.wait_batch(batch, 16, timeout=180)
    assert status["counts"] == {"done": 16}, status
    shares = collections.Counter(r["generated_by"] for r in cluster.records(batch))
    print(f"\nshares with worker-4 joining: {dict(sorted(shares.items()))}")
    assert shares.get("worker-4", 0) >= 1, shares
    after = {name: cluster.host(name).pids() for name in before}
    for name, pids in before.items():
        assert set(pids) <= set(after[name]), f"something on {name} was restarted"


def render_time(cluster: Topology) -> float:
    batch, new = tasks(LARGE, 1)
    started = time.monotonic()
    cluster.create(new)
    status = cluster.wait_batch(batch, 1, timeout=240)
    elapsed = time.monotonic() - started
    assert status["counts"] == {"done": 1}, status
    return elapsed


def test_large_image_split_across_workers_is_faster(cluster: Topology) -> None:
    """One image in bands: three workers against one, on the same (shared, 2-core) machine.

    The three-worker time is the better of two runs, one before and one after the
    single-worker run, so that a burst of load from elsewhere on the machine
    during one run does not decide the comparison.
    """
    three = render_time(cluster)
    cluster.stop_role("worker-2", "faafo-worker")
    cluster.stop_role("worker-3", "faafo-worker")
    one = render_time(cluster)
    cluster.add_worker(2)
    cluster.add_worker(3)
    three = min(three, render_time(cluster))
    speedup = one / three
    print(f"\n{LARGE['width']}x{LARGE['height']}, {LARGE['iterations']} iterations (16 bands): "
          f"{one:.1f} s on 1 worker, {three:.1f} s on 3 workers, speed-up {speedup:.2f}x "
          "(2 cores: at most 2x)")
    assert three < one, f"3 workers took {three:.1f} s, 1 worker {one:.1f} s"


def test_demo_role_creates_fractals_through_the_load_balancer(cluster: Topology) -> None:
    """``install.sh -r demo`` (the seed's all-in-one user data ends with it) from the client."""
    def total() -> int:
        return int(cluster.agent().ok("GET", f"{cluster.url}/v1/fractal",
                                      params={"results_per_page": 1})["num_results"])

    before = total()
    cluster.install("client", "-r", "demo", "-e", cluster.url, "-t", cluster.client_token)
    assert total() == before + 5
