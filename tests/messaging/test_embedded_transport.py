"""The embedded queue keeps its promises across real processes.

Each test uses its own queue file under ``tmp_path``. Processes are started
with the ``spawn`` method so that children share nothing with pytest but the
file, exactly like ``faafo up``'s API and workers.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import random
import signal
import sqlite3
import statistics
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import kombu
import pytest
from kombu import Consumer, Exchange, Producer, Queue
from kombu.exceptions import ChannelError

from faafo.messaging import embedded

CTX = multiprocessing.get_context("spawn")
EXCHANGE = Exchange("tasks", type="direct", durable=True)
QUEUE = Queue("normal", EXCHANGE, routing_key="normal", durable=True)
FAST = {"polling_interval": 0.01, "reclaim_interval": 0.2}


# -- helpers, also run inside child processes -----------------------------------


def connect(path: Path, **options: Any) -> kombu.Connection:
    """A kombu connection to the embedded queue at *path*."""
    embedded.register()
    return kombu.Connection(embedded.url_for(path), transport_options={**FAST, **options})


def publish(conn: kombu.Connection, numbers: Any, **kwargs: Any) -> None:
    """Publish ``{"n": i}`` for each i, declaring the queue like the API does."""
    producer = Producer(conn)
    for n in numbers:
        producer.publish({"n": n}, exchange=EXCHANGE, routing_key="normal",
                         declare=[QUEUE], **kwargs)


def drain(conn: kombu.Connection, on_message: Callable[[Any, Any], None], *,
          until: Callable[[], bool], prefetch: int = 10, timeout: float = 10.0) -> None:
    """Consume with *on_message* until *until()* is true (or fail after *timeout*)."""
    deadline = time.monotonic() + timeout
    with Consumer(conn, [QUEUE], callbacks=[on_message], prefetch_count=prefetch):
        while not until():
            assert time.monotonic() < deadline, "timed out waiting for messages"
            with contextlib.suppress(TimeoutError):
                conn.drain_events(timeout=0.1)


def _publisher(path: Path, numbers: list[int], out: Any, hang: bool) -> None:
    conn = connect(path)
    publish(conn, numbers)
    out.put(("published", len(numbers)))
    if hang:  # wait to be killed: nothing gets a chance to flush or close
        time.sleep(60)
    conn.close()


def _consumer(path: Path, name: str, out: Any, stop: Any, prefetch: int, ack: bool,
              work_seconds: float, options: dict[str, Any]) -> None:
    options = dict(options)
    drain_timeout = options.pop("drain_timeout", 0.05)
    with connect(path, **options) as conn:
        def on_message(body: Any, message: Any) -> None:
            time.sleep(work_seconds)
            if ack:
                message.ack()
            out.put((name, body["n"], message.delivery_info["redelivered"],
                     message.headers[embedded.DELIVERY_COUNT_HEADER]))

        with Consumer(conn, [QUEUE], callbacks=[on_message], prefetch_count=prefetch):
            out.put((name, "ready", None, None))
            while not stop.is_set():
                with contextlib.suppress(TimeoutError):
                    conn.drain_events(timeout=drain_timeout)


# -- fixtures -------------------------------------------------------------------


@pytest.fixture
def queue_file(tmp_path: Path) -> Path:
    return tmp_path / "data" / "queue.sqlite3"


@pytest.fixture
def procs() -> Iterator[Callable[..., Any]]:
    """Start child processes; whatever is still running at the end is killed."""
    started: list[Any] = []

    def start(target: Callable[..., None], *args: Any) -> Any:
        proc = CTX.Process(target=target, args=args, daemon=True)
        proc.start()
        started.append(proc)
        return proc

    yield start
    for proc in started:
        if proc.is_alive():
            proc.kill()
        proc.join(5)


def start_consumers(start: Callable[..., Any], path: Path, count: int, *, prefetch: int = 1,
                    ack: bool = True, work_seconds: float = 0.0,
                    **options: Any) -> tuple[Any, Any, list[Any]]:
    """Start *count* consumer processes and wait until each is consuming."""
    out, stop = CTX.Queue(), CTX.Event()
    children = [start(_consumer, path, f"c{i}", out, stop, prefetch, ack, work_seconds, options)
                for i in range(count)]
    ready = {out.get(timeout=30)[0] for _ in range(count)}
    assert len(ready) == count
    return out, stop, children


def collect(out: Any, count: int, timeout: float = 20.0) -> list[tuple[Any, ...]]:
    """Read *count* delivery reports from consumer processes."""
    return [out.get(timeout=timeout) for _ in range(count)]


def ready_count(path: Path) -> int:
    with connect(path) as conn:
        return QUEUE(conn.default_channel).queue_declare(passive=True).message_count


# -- tests ----------------------------------------------------------------------


def test_url_register_and_parent_directory(queue_file: Path) -> None:
    embedded.register()
    embedded.register()  # idempotent
    url = embedded.url_for(queue_file)
    assert url == "embedded://" + queue_file.as_posix()
    with kombu.Connection(url) as conn:
        conn.connect()
        assert isinstance(conn.transport, embedded.Transport)
        assert conn.transport.polling_interval == embedded.DEFAULT_POLLING_INTERVAL
    assert queue_file.is_file()

    opts = embedded.Options.from_url(
        "embedded:///x/my%20queue.sqlite3?polling_interval=0.5&visibility_timeout=none",
        {"polling_interval": 0.05, "fsync_publish": "false"})
    assert opts.path == Path("/x/my queue.sqlite3")
    assert (opts.polling_interval, opts.visibility_timeout, opts.fsync_publish) == (
        0.05, None, False)
    for bad in ("embedded://relative/queue.sqlite3", "embedded://", "amqp:///x"):
        with pytest.raises(ValueError):
            embedded.Options.from_url(bad)


def test_publish_is_durable_across_process_restarts(queue_file: Path, procs: Any) -> None:
    out = CTX.Queue()
    publisher = procs(_publisher, queue_file, list(range(20)), out, True)
    assert out.get(timeout=30) == ("published", 20)
    # The publisher is still running and has closed nothing: the rows must
    # already be in the file, and survive it being killed.
    with sqlite3.connect(queue_file) as db:
        assert db.execute("SELECT COUNT(*) FROM messages").fetchone()[0] == 20
    os.kill(publisher.pid, signal.SIGKILL)
    publisher.join(5)

    received, stop, consumer = start_consumers(procs, queue_file, 1, prefetch=5)
    got = [report[1] for report in collect(received, 20)]
    assert got == list(range(20))  # all of them, in publish order
    stop.set()
    consumer[0].join(10)
    assert consumer[0].exitcode == 0
    assert ready_count(queue_file) == 0
    with sqlite3.connect(queue_file) as db:  # acked means deleted
        assert db.execute("SELECT COUNT(*) FROM messages").fetchone()[0] == 0


def test_ack_requeue_and_reject(queue_file: Path) -> None:
    with connect(queue_file) as conn:
        publish(conn, range(4))
        seen: list[tuple[int, bool, int]] = []

        def on_message(body: Any, message: Any) -> None:
            n, redelivered = body["n"], message.delivery_info["redelivered"]
            seen.append((n, redelivered, message.headers[embedded.DELIVERY_COUNT_HEADER]))
            if n == 1 and not redelivered:
                message.requeue()
            elif n == 2 and not redelivered:
                message.reject(requeue=True)
            elif n == 3:
                message.reject()  # dropped for good
            else:
                message.ack()

        drain(conn, on_message, until=lambda: len(seen) == 6, prefetch=1)
        # A requeued message goes back to the head of the queue.
        assert seen == [(0, False, 0), (1, False, 0), (1, True, 1),
                        (2, False, 0), (2, True, 1), (3, False, 0)]
        assert QUEUE(conn.default_channel).queue_declare(passive=True).message_count == 0
        assert conn.default_channel.basic_get("normal") is None
    with sqlite3.connect(queue_file) as db:
        assert db.execute("SELECT COUNT(*) FROM messages").fetchone()[0] == 0


def test_close_returns_unacked_messages(queue_file: Path) -> None:
    with connect(queue_file) as producer_conn:
        publish(producer_conn, range(3))
    holder = connect(queue_file)
    held: list[Any] = []
    drain(holder, lambda body, message: held.append(body["n"]),
          until=lambda: len(held) == 3, prefetch=3)
    assert ready_count(queue_file) == 0
    holder.close()  # graceful: no waiting for the reclaimer
    assert ready_count(queue_file) == 3
    with connect(queue_file, reclaim_interval=3600) as conn:
        again: list[tuple[int, bool]] = []

        def on_message(body: Any, message: Any) -> None:
            again.append((body["n"], message.delivery_info["redelivered"]))
            message.ack()

        drain(conn, on_message, until=lambda: len(again) == 3)
    assert again == [(0, True), (1, True), (2, True)]


def test_killed_consumer_messages_are_redelivered(queue_file: Path, procs: Any) -> None:
    with connect(queue_file) as conn:
        publish(conn, range(3))
    out, _stop, (holder,) = start_consumers(procs, queue_file, 1, prefetch=2, ack=False)
    assert sorted(report[1] for report in collect(out, 2)) == [0, 1]

    with connect(queue_file) as conn:
        got: list[tuple[int, bool, int]] = []

        def on_message(body: Any, message: Any) -> None:
            got.append((body["n"], message.delivery_info["redelivered"],
                        message.headers[embedded.DELIVERY_COUNT_HEADER]))
            message.ack()

        # While the holder lives, its two messages stay with it, even after
        # several reclaim rounds; only the third one is ours.
        drain(conn, on_message, until=lambda: len(got) == 1)
        time.sleep(0.6)
        with pytest.raises(TimeoutError):
            conn.drain_events(timeout=0.5)
        assert got == [(2, False, 0)]

        os.kill(holder.pid, signal.SIGKILL)
        holder.join(5)
        killed_at = time.monotonic()
        drain(conn, on_message, until=lambda: len(got) == 3, timeout=10)
        elapsed = time.monotonic() - killed_at
    assert sorted(got[1:]) == [(0, True, 1), (1, True, 1)]
    assert elapsed < 3.0, f"redelivery took {elapsed:.1f} s"
    # The dead owner's lock file is cleaned up.
    owners = queue_file.with_name(queue_file.name + "-owners")
    assert not list(owners.glob("*.lock"))


def test_each_message_consumed_exactly_once_by_many_processes(
        queue_file: Path, procs: Any) -> None:
    total = 600
    out, stop, consumers = start_consumers(procs, queue_file, 3, prefetch=4)
    published = CTX.Queue()
    procs(_publisher, queue_file, list(range(0, total, 2)), published, False)
    procs(_publisher, queue_file, list(range(1, total, 2)), published, False)
    reports = collect(out, total, timeout=60)
    time.sleep(0.3)  # any duplicate would show up now
    stop.set()
    for child in consumers:
        child.join(10)
    while not out.empty():
        reports.append(out.get())
    counts = Counter(report[1] for report in reports)
    assert set(counts) == set(range(total))
    assert max(counts.values()) == 1, "a message was delivered twice"
    assert not any(report[2] for report in reports), "nothing should be redelivered"
    per_consumer = Counter(report[0] for report in reports)
    assert len(per_consumer) == 3  # all took part
    assert ready_count(queue_file) == 0


def test_prefetch_one_spreads_long_tasks(queue_file: Path, procs: Any) -> None:
    out, stop, _ = start_consumers(procs, queue_file, 3, prefetch=1, work_seconds=0.4)
    with connect(queue_file) as conn:
        publish(conn, range(6))
        time.sleep(0.2)
        # Each worker holds one task, the other three wait in the queue.
        channel = conn.default_channel
        assert QUEUE(channel).queue_declare(passive=True).message_count == 3
        assert conn.transport.store.unacked_count("normal") == 3
    reports = collect(out, 6)
    stop.set()
    assert Counter(report[0] for report in reports) == {"c0": 2, "c1": 2, "c2": 2}


def test_queue_declare_counts_ready_messages_and_purge(queue_file: Path) -> None:
    with connect(queue_file) as conn:
        channel = conn.default_channel
        with pytest.raises(ChannelError):
            Queue("nope", EXCHANGE, routing_key="nope")(channel).queue_declare(passive=True)
        publish(conn, range(5))
        bound = QUEUE(channel)
        assert bound.queue_declare(passive=True).message_count == 5
        held = channel.basic_get("normal")
        assert held is not None and held.payload == {"n": 0}
        assert bound.queue_declare(passive=True).message_count == 4
        assert bound.purge() == 4  # only ready messages, as in AMQP
        assert bound.queue_declare(passive=True).message_count == 0
        held.requeue()  # the delivered one survived the purge
        assert bound.queue_declare(passive=True).message_count == 1


def test_bindings_are_shared_and_priority_is_respected(queue_file: Path) -> None:
    with connect(queue_file) as worker:
        QUEUE(worker.default_channel).declare()  # the worker declares and binds
    with connect(queue_file) as api:
        # The API only knows the exchange: routing comes from the file.
        producer = Producer(api, exchange=EXCHANGE)
        producer.publish({"n": "low"}, routing_key="normal", priority=0)
        producer.publish({"n": "high"}, routing_key="normal", priority=9)
        producer.publish({"n": "low2"}, routing_key="normal", priority=0)
        producer.publish({"n": "lost"}, routing_key="unbound")
    with connect(queue_file) as conn:
        order: list[str] = []

        def on_message(body: Any, message: Any) -> None:
            order.append(body["n"])
            message.ack()

        drain(conn, on_message, until=lambda: len(order) == 3)
    assert order == ["high", "low", "low2"]


def test_fanout_and_topic_exchanges_route_across_connections(queue_file: Path) -> None:
    events = Exchange("events", type="fanout")
    logs = Exchange("logs", type="topic")
    queues = [Queue("ev1", events), Queue("ev2", events),
              Queue("render", logs, routing_key="render.*")]
    with connect(queue_file) as declarer:
        for queue in queues:
            queue(declarer.default_channel).declare()
    with connect(queue_file) as api:  # knows none of the bindings
        Producer(api, exchange=events).publish({"n": "all"})
        Producer(api, exchange=logs).publish({"n": "hit"}, routing_key="render.done")
        Producer(api, exchange=logs).publish({"n": "miss"}, routing_key="upload.done")
    with connect(queue_file) as conn:
        channel = conn.default_channel
        got = {q.name: channel.basic_get(q.name, no_ack=True) for q in queues}
        assert {name: m.payload["n"] for name, m in got.items()} == {
            "ev1": "all", "ev2": "all", "render": "hit"}
        assert all(channel.basic_get(q.name) is None for q in queues)


def test_visibility_timeout_is_a_last_resort_for_hung_consumers(queue_file: Path) -> None:
    options = {"visibility_timeout": 0.3, "reclaim_interval": 0.05}
    with connect(queue_file, **options) as hung, connect(queue_file, **options) as other:
        publish(hung, [7])
        stuck = hung.default_channel.basic_get("normal")
        assert stuck is not None
        time.sleep(0.4)
        again = other.default_channel.basic_get("normal")
        assert again is not None and again.payload == {"n": 7}
        assert again.delivery_info["redelivered"]
        stuck.requeue()  # too late: it cannot take the message back from `other`
        assert other.default_channel.basic_get("normal") is None
        again.ack()
    assert ready_count(queue_file) == 0


def test_no_ack_consumers_delete_on_delivery(queue_file: Path) -> None:
    with connect(queue_file) as conn:
        publish(conn, range(2))
        got: list[int] = []
        with Consumer(conn, [QUEUE], callbacks=[lambda body, m: got.append(body["n"])],
                      no_ack=True):
            while len(got) < 2:
                conn.drain_events(timeout=5)
    with sqlite3.connect(queue_file) as db:
        assert db.execute("SELECT COUNT(*) FROM messages").fetchone()[0] == 0


@pytest.mark.parametrize(("options", "limit"), [
    # Woken by the publisher: fast although it would poll only every 5 s.
    ({"polling_interval": 5.0, "reclaim_interval": 5.0, "drain_timeout": 1.0}, 0.02),
    # Without wake-ups it polls (every 10 ms here).
    ({"wakeups": False}, 0.05),
], ids=["doorbell", "polling"])
def test_latency_and_idle_consumers_never_write(queue_file: Path, procs: Any,
                                               options: dict[str, Any], limit: float) -> None:
    out, stop, _ = start_consumers(procs, queue_file, 2, prefetch=1, **options)
    with sqlite3.connect(queue_file) as db:
        before = db.execute("PRAGMA data_version").fetchone()[0]
        time.sleep(0.5)  # two idle consumers
        assert db.execute("PRAGMA data_version").fetchone()[0] == before
    latencies = []
    with connect(queue_file) as conn:
        for n in range(40):
            time.sleep(random.uniform(0, 0.01))  # don't ride the polling phase
            sent = time.perf_counter()
            publish(conn, [n])
            assert out.get(timeout=10)[1] == n
            latencies.append(time.perf_counter() - sent)
    stop.set()
    # Generous limits, for a loaded CI machine.
    assert statistics.median(latencies) < limit, latencies


def test_ack_from_another_thread_wakes_the_drain_loop(queue_file: Path) -> None:
    """Workers ack from their render threads while one thread drains."""
    slow = {"polling_interval": 5.0, "reclaim_interval": 5.0}
    with connect(queue_file, **slow) as conn:
        publish(conn, range(2))
        got: list[float] = []

        def on_message(body: Any, message: Any) -> None:
            got.append(time.perf_counter())
            threading.Timer(0.1, message.ack).start()

        with Consumer(conn, [QUEUE], callbacks=[on_message], prefetch_count=1):
            conn.drain_events(timeout=2)
            conn.drain_events(timeout=2)  # blocked on prefetch until the ack
    assert len(got) == 2 and got[1] - got[0] < 1.0
