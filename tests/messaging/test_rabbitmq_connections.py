"""RabbitMQ connections: heartbeats negotiated, and the API's publisher never waits unbounded.

A TCP forwarder between the publisher and this machine's RabbitMQ stands in
for the network: it counts connections and can go silent (it keeps both
sockets open and drops what it reads), which is what a partition looks like
to both ends until TCP gives up, many minutes later.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
import time
import uuid as uuidlib

import pytest

from faafo.config import embedded_database_url
from faafo.messaging import broker
from faafo.messaging.messages import TaskMessage
from faafo.messaging.publisher import Publisher
from faafo.messaging.topology import TASK_QUEUE
from support.faults import FaultCluster, small_task, wait_finished
from support.processes import Service, wait_until

pytestmark = pytest.mark.servers


class SilentableProxy:
    """Forwards 127.0.0.1:port to ``target``; ``silent`` drops traffic (and closes) both ways."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.silent = threading.Event()
        self.accepted = 0
        self._closed = False
        self._sockets: list[socket.socket] = []
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            self.accepted += 1
            upstream = socket.create_connection(self.target)
            self._sockets += [client, upstream]
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(src, dst), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                if not self.silent.is_set():
                    dst.sendall(data)
        except OSError:
            pass
        finally:
            # A partition hides a close too: while silent, the other end never learns.
            if not self.silent.is_set():
                for sock in (src, dst):
                    with contextlib.suppress(OSError):
                        sock.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self._closed = True
        self._listener.close()
        for sock in self._sockets:
            with contextlib.suppress(OSError):
                sock.close()


def through(url: str, proxy: SilentableProxy) -> str:
    """``url`` (amqp://user:password@host:port/vhost) with the proxy as host and port."""
    credentials, _, location = url.rpartition("@")
    _, _, path = location.partition("/")
    return f"{credentials}@127.0.0.1:{proxy.port}/{path}"


@pytest.fixture
def proxy(rabbitmq_url):
    forwarder = SilentableProxy(("127.0.0.1", 5672))
    yield forwarder
    forwarder.close()


def ready(url: str) -> int:
    connection = broker.connection(url)
    try:
        return int(TASK_QUEUE(connection.channel()).queue_declare(passive=True).message_count)
    finally:
        connection.release()


def task(uuid: str = "u1") -> list[list[TaskMessage]]:
    return [[TaskMessage(uuid, 8, 8, 8, -1.0, 1.0, -1.0, 1.0)]]


def test_the_heartbeat_option_is_ours_and_the_rest_of_the_url_is_kept():
    assert broker.split_heartbeat("amqp://u:p?w@h:5672/v?heartbeat=3&ssl=1") == (
        "amqp://u:p?w@h:5672/v?ssl=1",
        3.0,
    )
    assert broker.split_heartbeat("amqp://u:p@h//") == ("amqp://u:p@h//", 20.0)
    for bad in ("x", "-1", "nan"):
        with pytest.raises(ValueError, match="heartbeat in the transport URL"):
            broker.split_heartbeat(f"amqp://h//?heartbeat={bad}")


def test_connections_negotiate_heartbeats_with_rabbitmq(rabbitmq_url):
    """Without a heartbeat a frozen peer holds its messages until TCP gives up."""
    for url, expected in (
        (rabbitmq_url, broker.HEARTBEAT_SECONDS),
        (rabbitmq_url + "?heartbeat=3", 3.0),
    ):
        connection = broker.connection(url)
        try:
            connection.ensure_connection(max_retries=1)
            assert broker.heartbeat_interval(connection) == expected, url
        finally:
            connection.release()
    publisher = Publisher(rabbitmq_url)
    try:
        publisher.publish(task())
        assert broker.heartbeat_interval(publisher._connection) == broker.HEARTBEAT_SECONDS  # type: ignore[arg-type]
    finally:
        publisher.close()


def test_a_silent_broker_fails_the_publish_in_bounded_time(rabbitmq_url, proxy):
    """A partition used to block the publisher lock, and every create behind it, forever."""
    url = through(rabbitmq_url, proxy)
    publisher = Publisher(url, confirm_timeout=2, backoff=3)
    try:
        publisher.publish(task("before"))
        proxy.silent.set()
        outcome: dict[str, object] = {}

        def publish() -> None:
            started = time.monotonic()
            try:
                publisher.publish(task("during"))
                outcome["result"] = "published"
            except Exception as error:
                outcome["result"] = error
            outcome["seconds"] = time.monotonic() - started

        thread = threading.Thread(target=publish, daemon=True)
        thread.start()
        thread.join(timeout=30)
        assert not thread.is_alive(), "the publish still waits for a confirm after 30 s"
        assert isinstance(outcome["result"], TimeoutError), outcome
        assert outcome["seconds"] < 10, outcome  # type: ignore[operator]
        # The next create does not queue up behind another long wait.
        started = time.monotonic()
        with pytest.raises(ConnectionError, match="unreachable moments ago"):
            publisher.publish(task("still during"))
        assert time.monotonic() - started < 1

        proxy.silent.clear()
        time.sleep(3.5)  # the back-off
        publisher.publish(task("after"))
        assert proxy.accepted == 2, "a new connection once the broker answers again"
        assert ready(rabbitmq_url) == 2, "before and after; nothing got through the silence"
    finally:
        publisher.close()


def test_an_idle_publisher_keeps_its_connection_alive(rabbitmq_url, proxy):
    """RabbitMQ closes a connection that sends nothing for two heartbeats."""
    publisher = Publisher(through(rabbitmq_url, proxy) + "?heartbeat=1")
    try:
        publisher.publish(task("first"))
        time.sleep(6)  # six heartbeat intervals without a publish
        publisher.publish(task("second"))
        assert proxy.accepted == 1, "the idle connection was dropped and opened again"
        assert ready(rabbitmq_url) == 2
    finally:
        publisher.close()


def test_an_idle_publisher_notices_a_dead_connection(rabbitmq_url, proxy, caplog):
    publisher = Publisher(through(rabbitmq_url, proxy) + "?heartbeat=1")
    try:
        publisher.publish(task("first"))
        with caplog.at_level(logging.WARNING, logger="faafo.messaging.publisher"):
            proxy.silent.set()
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline and "lost while idle" not in caplog.text:
                time.sleep(0.1)
        assert "lost while idle" in caplog.text, "two missed heartbeats went unnoticed"
        proxy.silent.clear()
        publisher.publish(task("second"))  # on a new connection, at once
        assert proxy.accepted == 2
        assert ready(rabbitmq_url) == 2
    finally:
        publisher.close()


def test_a_worker_cut_off_from_the_broker_notices_it_and_comes_back(tmp_path, rabbitmq_url, proxy):
    """Its heartbeats find the silence; it drops the connection (no closing handshake,
    which would wait for the silent broker) and reconnects once the network is back."""
    data = tmp_path / "data"
    cluster = FaultCluster(embedded_database_url(data), rabbitmq_url, tmp_path, data)
    try:
        cluster.start_api()
        worker = Service(
            "w1",
            "faafo.worker.main",
            [
                "--transport-url",
                through(rabbitmq_url, proxy) + "?heartbeat=1",
                "--data-dir",
                str(data),
                "--endpoint-url",
                cluster.endpoints[0],
                "--name",
                "w1",
            ],
            tmp_path,
        ).start()
        cluster.workers.append(worker)
        wait_until(lambda: "consuming from" in worker.tail(50), 60, message="consuming")
        proxy.silent.set()
        cut_at = time.monotonic()
        wait_until(lambda: "queue connection lost" in worker.tail(50), 30, message="noticed")
        noticed_after = time.monotonic() - cut_at
        proxy.silent.clear()
        batch = str(uuidlib.uuid4())
        with cluster.client() as client:
            client.create([small_task(batch, 0)])
            wait_finished(client, batch, 1, timeout=90, logs=cluster.logs)
        assert worker.alive()
        assert noticed_after < 15, f"noticed the silence after {noticed_after:.1f}s"
    finally:
        cluster.stop()
