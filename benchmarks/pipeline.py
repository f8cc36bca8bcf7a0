"""Tasks per second through the whole pipeline: API, queue, two workers, database.

Creates 1000 small tasks (64x64, 128 iterations) in one batch request and
times until all are done, on the embedded default (SQLite + embedded queue)
and on RabbitMQ + PostgreSQL from this machine (skipped if absent).

    python benchmarks/pipeline.py [--tasks 1000] [--workers 2] [--only embedded|rabbitmq]
"""

from __future__ import annotations

import argparse
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def reachable(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def start(module: str, args: list[str], log: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", module, *args], stdout=open(log, "ab"), stderr=subprocess.STDOUT
    )


TASK = {"width": 64, "height": 64, "iterations": 128, "xa": -1.5, "xb": 1.5, "ya": -1.0, "yb": 1.0}


def small_tasks(count: int) -> list[dict]:
    batch = str(uuid.uuid4())
    return [{**TASK, "batch": batch} for _ in range(count)]


def drain(url: str, tasks: list[dict], poll: float) -> dict:
    """Create the tasks in one request; return the batch's status once all finished."""
    httpx.post(url + "/v1/fractal", json=tasks, timeout=120).raise_for_status()
    while True:
        status = httpx.get(f"{url}/v1/batch/{tasks[0]['batch']}").json()
        if status["finished"]:
            return status
        time.sleep(poll)


def run(database_url: str, transport_url: str, tasks: int, workers: int, work: Path) -> float:
    port = free_port()
    common = [
        "--database-url",
        database_url,
        "--transport-url",
        transport_url,
        "--data-dir",
        str(work),
        "--log-level",
        "WARNING",
    ]
    api = start(
        "faafo.api.main",
        [*common, "--listen-address", "127.0.0.1", "--bind-port", str(port)],
        work / "api.log",
    )
    url = f"http://127.0.0.1:{port}"
    procs = [api]
    try:
        for _ in range(200):
            try:
                if httpx.get(url + "/readyz").status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        for i in range(workers):
            procs.append(
                start(
                    "faafo.worker.main",
                    [*common, "--endpoint-url", url, "--name", f"w{i}"],
                    work / f"worker{i}.log",
                )
            )
        # Warm up: every worker compiles/loads its kernel before the clock starts.
        drain(url, small_tasks(workers * 4), poll=0.1)
        started = time.perf_counter()
        status = drain(url, small_tasks(tasks), poll=0.02)
        elapsed = time.perf_counter() - started
        done = status["counts"].get("done", 0)
        if done != tasks:
            raise SystemExit(f"only {done} of {tasks} done: {status}")
        return elapsed
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(timeout=60)


def rabbitmq_and_postgres() -> tuple[str, str, callable] | None:
    if not (reachable(5672) and reachable(5432)):
        return None
    from sqlalchemy import create_engine, text

    name = f"faafo_bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(
        "postgresql+psycopg://postgres@127.0.0.1:5432/postgres", isolation_level="AUTOCOMMIT"
    )
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    ctl = shutil.which("rabbitmqctl")
    vhost = ""
    if ctl:
        subprocess.run([ctl, "add_vhost", name], check=True, capture_output=True)
        subprocess.run(
            [ctl, "set_permissions", "-p", name, "guest", ".*", ".*", ".*"],
            check=True,
            capture_output=True,
        )
        vhost = name

    def cleanup() -> None:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        if ctl:
            subprocess.run([ctl, "delete_vhost", name], capture_output=True)

    return (
        f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}",
        f"amqp://guest:guest@127.0.0.1:5672/{vhost}",
        cleanup,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--only", choices=("embedded", "rabbitmq"))
    args = parser.parse_args()
    print(
        f"{args.tasks} tasks of 64x64 pixels, 128 iterations, {args.workers} workers; "
        f"median of {args.runs} runs"
    )
    setups = []
    if args.only in (None, "embedded"):
        setups.append("embedded")
    if args.only in (None, "rabbitmq"):
        setups.append("rabbitmq")
    for setup in setups:
        times = []
        for _ in range(args.runs):
            with tempfile.TemporaryDirectory() as tmp:
                work = Path(tmp)
                if setup == "embedded":
                    times.append(
                        run(
                            f"sqlite:///{work / 'faafo.sqlite3'}",
                            f"embedded://{work / 'queue.sqlite3'}",
                            args.tasks,
                            args.workers,
                            work,
                        )
                    )
                else:
                    servers = rabbitmq_and_postgres()
                    if servers is None:
                        print("rabbitmq + postgresql: skipped (servers not reachable)")
                        break
                    database_url, transport_url, cleanup = servers
                    try:
                        times.append(
                            run(database_url, transport_url, args.tasks, args.workers, work)
                        )
                    finally:
                        cleanup()
        if times:
            times.sort()
            median = times[len(times) // 2]
            label = (
                "embedded (SQLite + embedded queue)"
                if setup == "embedded"
                else "RabbitMQ + PostgreSQL"
            )
            print(
                f"{label:38s} median {median:6.2f} s  ->  {args.tasks / median:7.0f} tasks/s  "
                f"(runs: {', '.join(f'{t:.2f}' for t in times)})"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
