"""Compare the server-less kombu transports that could carry ``faafo up``'s tasks.

Candidates (``memory://`` is left out: it cannot cross process boundaries):

* kombu's SQLAlchemy transport on SQLite (``sqla+sqlite:///...``),
* kombu's filesystem transport,
* faafo's embedded transport (:mod:`faafo.messaging.embedded`), as
  configured by default, and two variants: ``embedded+fsync`` (each publish
  fsynced) and ``embedded-polling`` (doorbells off, polling only).

For each it measures, with real processes:

latency
    publish -> receive, one message at a time (median and p95);
throughput
    2 producer processes and 2 consumer processes (prefetch 1, ack each
    message), messages per second end to end, plus duplicates / losses;
publish under pollers
    how long ``publish`` takes while 8 consumers poll an empty queue
    (SQLite has one writer at a time: do pollers starve publishers?);
idle CPU
    CPU used by one consumer polling an empty queue;
kill -9
    a consumer holds an unacknowledged message and is killed with SIGKILL:
    is the message lost, or redelivered, and after how long?

Every transport polls at the same ``--polling-interval`` (default 20 ms;
kombu's default of 1 s would dominate every latency), so the figures compare
the stores, not their defaults.

Run::

    python benchmarks/embedded_queue.py            # all three, ~1 minute
    python benchmarks/embedded_queue.py --only embedded --messages 4000
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing
import os
import random
import signal
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import kombu
from kombu import Consumer, Exchange, Producer, Queue

from faafo.messaging import embedded

CTX = multiprocessing.get_context("spawn")
EXCHANGE = Exchange("tasks", type="direct", durable=True)
QUEUE = Queue("normal", EXCHANGE, routing_key="normal", durable=True)
IDLE_QUEUE = Queue("idle", EXCHANGE, routing_key="idle", durable=True)

Target = tuple[str, dict[str, Any]]


def sqlalchemy_target(directory: Path) -> Target:
    return f"sqla+sqlite:///{directory / 'kombu.sqlite3'}", {}


def filesystem_target(directory: Path) -> Target:
    folders = {name: directory / name for name in ("queue", "control", "processed")}
    for folder in folders.values():
        folder.mkdir(parents=True, exist_ok=True)
    return "filesystem://", {
        "data_folder_in": str(folders["queue"]), "data_folder_out": str(folders["queue"]),
        "control_folder": str(folders["control"]), "processed_folder": str(folders["processed"]),
    }


def embedded_target(directory: Path) -> Target:
    return embedded.url_for(directory / "queue.sqlite3"), {}


def embedded_fsync_target(directory: Path) -> Target:
    """Ours, with every publish fsynced (survives power loss, not only crashes)."""
    return embedded.url_for(directory / "queue.sqlite3"), {"fsync_publish": True}


def embedded_polling_target(directory: Path) -> Target:
    """Ours without doorbells: plain polling, like the other two."""
    return embedded.url_for(directory / "queue.sqlite3"), {"wakeups": False}


CANDIDATES: dict[str, Callable[[Path], Target]] = {
    "sqlalchemy": sqlalchemy_target,
    "filesystem": filesystem_target,
    "embedded": embedded_target,
    "embedded+fsync": embedded_fsync_target,
    "embedded-polling": embedded_polling_target,
}


def connect(target: Target, polling_interval: float) -> kombu.Connection:
    """Connect; the polling interval is set on the transport because the
    SQLAlchemy transport hands every transport option to ``create_engine``."""
    embedded.register()
    url, options = target
    conn = kombu.Connection(url, transport_options=options)
    conn.transport.polling_interval = polling_interval
    return conn


# -- child processes -------------------------------------------------------------


def consumer_child(target: Target, polling: float, out: Any, stop: Any, ack: bool,
                   queue: Queue) -> None:
    """Consume, report ``(kind, value)`` for each message, until *stop* is set."""
    try:
        with connect(target, polling) as conn:
            def on_message(body: Any, message: Any) -> None:
                received = time.perf_counter()
                if ack:
                    message.ack()
                redelivered = bool(message.delivery_info.get("redelivered"))
                out.put(("msg", body["n"], received - body["t"], redelivered))

            with Consumer(conn, [queue], callbacks=[on_message], prefetch_count=1):
                out.put(("ready", os.getpid(), 0.0, False))
                cpu_start = time.process_time()
                wall_start = time.monotonic()
                while not stop.is_set():  # like a worker: long waits, no busy loop
                    with contextlib.suppress(TimeoutError):
                        conn.drain_events(timeout=1.0)
                cpu = time.process_time() - cpu_start
                out.put(("cpu", cpu / (time.monotonic() - wall_start), 0.0, False))
    except Exception as exc:  # report instead of dying silently
        out.put(("error", repr(exc), 0.0, False))


def producer_child(target: Target, polling: float, numbers: list[int], start: Any,
                   out: Any) -> None:
    """Publish ``{"n": i}`` for each number once *start* is set."""
    try:
        with connect(target, polling) as conn:
            producer = Producer(conn)
            producer.publish({"n": -1, "t": 0.0}, exchange=EXCHANGE, routing_key="warmup",
                             declare=[QUEUE])
            out.put(("ready", os.getpid(), 0.0, False))
            start.wait(60)
            for n in numbers:
                producer.publish({"n": n, "t": time.perf_counter()}, exchange=EXCHANGE,
                                 routing_key="normal")
            out.put(("published", len(numbers), 0.0, False))
    except Exception as exc:
        out.put(("error", repr(exc), 0.0, False))


# -- measurements ----------------------------------------------------------------


@dataclass
class Result:
    name: str
    latency_median_ms: float = float("nan")
    latency_p95_ms: float = float("nan")
    throughput: float = float("nan")
    duplicates: int = 0
    lost: int = 0
    publish_p95_ms: float = float("nan")
    idle_cpu_percent: float = float("nan")
    kill9: str = "?"
    errors: list[str] = field(default_factory=list)


def p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20)[-1]


def wait_for(out: Any, kind: str, count: int, result: Result, timeout: float) -> list[Any]:
    """Collect *count* reports of *kind*; other kinds of error are recorded."""
    got: list[Any] = []
    deadline = time.monotonic() + timeout
    while len(got) < count:
        try:
            report = out.get(timeout=max(0.01, deadline - time.monotonic()))
        except Exception:
            result.errors.append(f"timeout waiting for {kind}")
            break
        if report[0] == kind:
            got.append(report)
        elif report[0] == "error":
            result.errors.append(report[1])
    return got


def stop_all(stop: Any, children: list[Any]) -> None:
    stop.set()
    for child in children:
        child.join(10)
        if child.is_alive():
            child.kill()


def measure_latency(target: Target, polling: float, samples: int, result: Result) -> None:
    out, stop = CTX.Queue(), CTX.Event()
    child = CTX.Process(target=consumer_child, args=(target, polling, out, stop, True, QUEUE))
    child.start()
    wait_for(out, "ready", 1, result, 60)
    latencies: list[float] = []
    with connect(target, polling) as conn:
        producer = Producer(conn)
        for n in range(samples + 10):
            time.sleep(random.uniform(0, polling))  # don't ride the poll phase
            producer.publish({"n": n, "t": time.perf_counter()}, exchange=EXCHANGE,
                             routing_key="normal", declare=[QUEUE])
            reports = wait_for(out, "msg", 1, result, 10)
            if not reports:
                break
            if n >= 10:  # warm-up excluded
                latencies.append(reports[0][2])
    stop_all(stop, [child])
    if len(latencies) >= 20:
        result.latency_median_ms = 1000 * statistics.median(latencies)
        result.latency_p95_ms = 1000 * p95(latencies)


def measure_throughput(target: Target, polling: float, total: int, result: Result) -> None:
    out, stop, start = CTX.Queue(), CTX.Event(), CTX.Event()
    consumers = [CTX.Process(target=consumer_child, args=(target, polling, out, stop, True, QUEUE))
                 for _ in range(2)]
    producers = [CTX.Process(target=producer_child,
                             args=(target, polling, list(range(i, total, 2)), start, out))
                 for i in range(2)]
    for child in consumers + producers:
        child.start()
    wait_for(out, "ready", 4, result, 60)
    began = time.perf_counter()
    start.set()
    seen: Counter[int] = Counter()
    finished = began
    deadline = time.monotonic() + max(60.0, total / 20)
    while len(seen) < total and time.monotonic() < deadline:
        try:
            kind, value, *_ = out.get(timeout=1.0)
        except Exception:
            continue
        if kind == "msg" and value >= 0:
            seen[value] += 1
            finished = time.perf_counter()
        elif kind == "error":
            result.errors.append(value)
    time.sleep(0.5)  # late duplicates
    stop_all(stop, consumers + producers)
    while not out.empty():
        kind, value, *_ = out.get()
        if kind == "msg" and value >= 0:
            seen[value] += 1
        elif kind == "error":
            result.errors.append(value)
    result.duplicates = sum(count - 1 for count in seen.values())
    result.lost = total - len(seen)
    if seen:
        result.throughput = len(seen) / (finished - began)


def measure_publish_under_pollers(target: Target, polling: float, count: int,
                                  result: Result) -> None:
    out, stop = CTX.Queue(), CTX.Event()
    pollers = [CTX.Process(target=consumer_child,
                           args=(target, polling, out, stop, True, IDLE_QUEUE))
               for _ in range(8)]
    for child in pollers:
        child.start()
    wait_for(out, "ready", len(pollers), result, 60)
    durations: list[float] = []
    with connect(target, polling) as conn:
        producer = Producer(conn)
        producer.publish({"n": -1, "t": 0.0}, exchange=EXCHANGE, routing_key="normal",
                         declare=[QUEUE])
        for n in range(count):
            began = time.perf_counter()
            try:
                producer.publish({"n": n, "t": 0.0}, exchange=EXCHANGE, routing_key="normal")
            except Exception as exc:
                result.errors.append(f"publish: {exc!r}")
                continue
            durations.append(time.perf_counter() - began)
            time.sleep(0.002)
    stop_all(stop, pollers)
    if len(durations) >= 20:
        result.publish_p95_ms = 1000 * p95(durations)


def measure_kill9(target: Target, polling: float, wait: float, result: Result) -> None:
    """A consumer holds a message unacked and is killed while another one waits."""
    out, stop = CTX.Queue(), CTX.Event()
    holder = CTX.Process(target=consumer_child, args=(target, polling, out, stop, False, QUEUE))
    holder.start()
    wait_for(out, "ready", 1, result, 60)
    with connect(target, polling) as conn:
        Producer(conn).publish({"n": 42, "t": 0.0}, exchange=EXCHANGE, routing_key="normal",
                               declare=[QUEUE])
    if not wait_for(out, "msg", 1, result, 10):
        result.kill9 = "not delivered"
        stop_all(stop, [holder])
        return
    rescuer = CTX.Process(target=consumer_child, args=(target, polling, out, stop, True, QUEUE))
    rescuer.start()
    wait_for(out, "ready", 1, result, 60)
    time.sleep(1.5)  # the rescuer is in its steady state, polling an empty queue
    os.kill(holder.pid, signal.SIGKILL)
    holder.join(5)
    killed = time.perf_counter()
    got = wait_for(out, "msg", 1, result, wait)
    if got:
        flag = "flag set" if got[0][3] else "no flag"
        result.kill9 = f"redelivered after {time.perf_counter() - killed:.1f} s ({flag})"
    else:
        result.kill9 = f"lost (not back after {wait:.0f} s)"
        result.errors = [e for e in result.errors if not e.startswith("timeout")]
    stop_all(stop, [rescuer])


def measure_idle_cpu(target: Target, polling: float, seconds: float, result: Result) -> None:
    out, stop = CTX.Queue(), CTX.Event()
    child = CTX.Process(target=consumer_child, args=(target, polling, out, stop, True, QUEUE))
    child.start()
    wait_for(out, "ready", 1, result, 60)
    time.sleep(seconds)
    stop_all(stop, [child])
    cpu = wait_for(out, "cpu", 1, result, 10)
    if cpu:
        result.idle_cpu_percent = 100 * cpu[0][1]


def run(name: str, args: argparse.Namespace) -> Result:
    result = Result(name)
    polling = args.polling_interval
    steps: list[tuple[str, Callable[[Target], None]]] = [
        ("latency", lambda t: measure_latency(t, polling, args.latency_samples, result)),
        ("idle CPU", lambda t: measure_idle_cpu(t, polling, 3.0, result)),
        ("throughput", lambda t: measure_throughput(t, polling, args.messages, result)),
        ("publish under pollers",
         lambda t: measure_publish_under_pollers(t, polling, 200, result)),
        ("kill -9", lambda t: measure_kill9(t, polling, args.kill_wait, result)),
    ]
    for label, step in steps:  # a fresh store for each measurement
        with tempfile.TemporaryDirectory(prefix=f"faafo-bench-{name}-") as tmp:
            print(f"  {name}: {label} ...", file=sys.stderr, flush=True)
            try:
                step(CANDIDATES[name](Path(tmp)))
            except Exception as exc:
                result.errors.append(f"{label}: {exc!r}")
    return result


def print_table(results: list[Result], args: argparse.Namespace) -> None:
    headers = ["transport", "latency median", "latency p95", "throughput",
               "dup / lost", "publish p95, 8 pollers", "idle CPU", "unacked msg after kill -9"]
    rows = [[
        r.name,
        f"{r.latency_median_ms:.1f} ms",
        f"{r.latency_p95_ms:.1f} ms",
        f"{r.throughput:.0f} msg/s",
        f"{r.duplicates} / {r.lost}",
        f"{r.publish_p95_ms:.2f} ms",
        f"{r.idle_cpu_percent:.1f} %",
        r.kill9,
    ] for r in results]
    widths = [max(len(row[i]) for row in [headers, *rows]) for i in range(len(headers))]
    print(f"\npolling interval {1000 * args.polling_interval:.0f} ms for all; "
          f"throughput: {args.messages} messages, 2 producers + 2 consumers "
          f"(prefetch 1, ack each); {os.cpu_count()} CPUs")
    for row in [headers, ["-" * w for w in widths], *rows]:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)))
    for r in results:
        for error in sorted(set(r.errors))[:5]:
            print(f"  {r.name}: {r.errors.count(error)}x {error[:160]}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", choices=sorted(CANDIDATES), action="append",
                        help="measure only this transport (repeatable)")
    parser.add_argument("--messages", type=int, default=2000,
                        help="messages in the throughput run (default 2000)")
    parser.add_argument("--latency-samples", type=int, default=300)
    parser.add_argument("--polling-interval", type=float, default=0.02)
    parser.add_argument("--kill-wait", type=float, default=10.0,
                        help="seconds to wait for a killed consumer's message")
    args = parser.parse_args(argv)
    results = [run(name, args) for name in (args.only or list(CANDIDATES))]
    print_table(results, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
