"""Draining a burst of heavy tasks: 1 fixed worker, 4 fixed workers, autoscaled 1..4.

Prints each drain time and the worker-seconds it used (workers alive x time,
integrated over the pool's changes, from the burst to its drain). The
autoscaled pool should drain about as fast as the big one for about its cost
during the burst; the difference is afterwards, which the figures leave out:
the big pool keeps all its workers while idle, the autoscaled one is back to
one worker once its down cooldown has passed.

    python benchmarks/autoscale.py [--tasks 600] [--iterations 3000]

The default burst lasts about half a minute on one worker: long enough that
the seconds a new worker takes to start (imports, kernels) do not dominate.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
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


def run(mode: list[str], tasks: int, iterations: int) -> tuple[float, float]:
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        port = free_port()
        log = work / "up.log"
        env = {**os.environ, "XDG_CONFIG_HOME": str(work / "config")}
        up = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "faafo.client.cli",
                "up",
                "--data-dir",
                str(work / "data"),
                "--bind-port",
                str(port),
                *mode,
            ],
            stdout=open(log, "ab"),  # noqa: SIM115 - closed when the process ends
            stderr=subprocess.STDOUT,
            env=env,
        )
        url = f"http://127.0.0.1:{port}"
        try:
            for _ in range(300):
                try:
                    if httpx.get(url + "/readyz").status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                time.sleep(0.2)
            time.sleep(2)  # workers connect and load their kernels
            token = json.loads((work / "data" / "tokens.json").read_text())["client_token"]
            batch = str(uuid.uuid4())
            burst = [
                {
                    "width": 300,
                    "height": 300,
                    "iterations": iterations,
                    "xa": -1.5,
                    "xb": 1.5,
                    "ya": -1.0,
                    "yb": 1.0,
                    "c_real": -0.8,
                    "c_imag": 0.156,
                    "batch": batch,
                }
                for _ in range(tasks)
            ]
            started, wall_start = time.monotonic(), time.time()
            httpx.post(
                url + "/v1/fractal",
                json=burst,
                timeout=120,
                headers={"Authorization": f"Bearer {token}"},
            ).raise_for_status()
            while not httpx.get(f"{url}/v1/batch/{batch}").json()["finished"]:
                time.sleep(0.1)
            elapsed = time.monotonic() - started
        finally:
            up.send_signal(signal.SIGINT)
            up.wait(timeout=120)
        return elapsed, worker_seconds(log.read_text(), mode, wall_start, elapsed)


def worker_seconds(log: str, mode: list[str], start: float, elapsed: float) -> float:
    """Workers alive x time from the burst's start (``start``, wall clock) to its drain.

    Autoscaled: one worker until the first decision, then each decision's size
    until the next, read from the log's time stamps (millisecond resolution).
    """
    if "--autoscale" not in mode:
        return int(mode[mode.index("--workers") + 1]) * elapsed
    stamps = [
        (
            time.mktime(time.strptime(t.split(",")[0], "%Y-%m-%d %H:%M:%S"))
            + int(t.split(",")[1]) / 1000,
            int(n),
        )
        for t, n in re.findall(r"^(\S+ \S+) INFO up .*autoscale: \d+ -> (\d+) workers", log, re.M)
    ]
    end = start + elapsed
    total, size, last = 0.0, 1, start
    for moment, workers in stamps:
        if moment >= end:
            break
        moment = max(moment, start)
        total += size * (moment - last)
        size, last = workers, moment
    return total + size * (end - last)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=600)
    parser.add_argument("--iterations", type=int, default=3000)
    args = parser.parse_args()
    print(f"burst of {args.tasks} tasks, 300x300 pixels, {args.iterations} iterations; "
          f"{os.cpu_count()} cores")
    for label, mode in (
        ("1 worker (fixed)", ["--workers", "1"]),
        ("4 workers (fixed)", ["--workers", "4"]),
        (
            "autoscaled 1..4",
            [
                "--autoscale",
                "1:4",
                "--autoscale-tasks-per-worker",
                "10",
                "--autoscale-down-cooldown",
                "5",
            ],
        ),
    ):
        elapsed, used = run(mode, args.tasks, args.iterations)
        print(f"{label:20s} drain {elapsed:7.2f} s   worker-seconds {used:8.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
