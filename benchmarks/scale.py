"""Tasks per second with 1, 2 and 3 workers on the scaled-out topology, and the scaling efficiency.

Builds the seed's Figure 18 in network namespaces (the multi-host test
harness: services, api-1/api-2 behind HAProxy, worker hosts, every role
started by deploy/install.sh), then drains the same batch with 1, 2 and 3
workers. Tasks are sized so that rendering dominates, since that is what more
workers buy; each worker renders with one thread, like a one-core instance.
Efficiency is the speed-up divided by the number of workers: on a machine with
fewer cores than workers it is capped at cores / workers.

Needs root (namespaces, veth, iptables) plus RabbitMQ, PostgreSQL and HAProxy
installed; run from the repository:

    sudo python benchmarks/scale.py [--tasks 60] [--size 600] [--iterations 800] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

# The harness lives with the tests.
from multihost.network import make_workdir
from multihost.topology import Topology

# The seahorse valley: costly everywhere, so every task takes about as long.
WINDOW = {"kind": "mandelbrot", "xa": -0.8, "xb": -0.6, "ya": 0.0, "yb": 0.2}


def drain(topology: Topology, count: int, size: int, iterations: int) -> float:
    """Seconds from the create request until every task of a new batch is done."""
    batch = str(uuid.uuid4())
    task = {**WINDOW, "width": size, "height": size, "iterations": iterations, "batch": batch}
    started = time.monotonic()
    topology.create([task] * count)
    status = topology.wait_batch(batch, count, timeout=900)
    elapsed = time.monotonic() - started
    if status["counts"] != {"done": count}:
        raise RuntimeError(f"batch did not complete: {status}")
    return elapsed


def set_workers(topology: Topology, wanted: int) -> None:
    """Exactly worker-1..wanted running; the others stopped gracefully."""
    for n in (1, 2, 3):
        name = f"worker-{n}"
        running = topology.pid(name, "faafo-worker") is not None
        if n <= wanted and not running:
            topology.add_worker(n)
        elif n > wanted and running:
            topology.stop_role(name, "faafo-worker")
    time.sleep(1)  # let new workers' consumers register with the broker


def measure(args: argparse.Namespace) -> list[dict[str, Any]]:
    workdir = make_workdir()
    topology = Topology(workdir)
    try:
        topology.build()
        set_workers(topology, 3)
        drain(topology, 6, args.size, args.iterations)  # warm-up: connections, JIT caches
        results: list[dict[str, Any]] = []
        for workers in (1, 2, 3):
            set_workers(topology, workers)
            seconds = drain(topology, args.tasks, args.size, args.iterations)
            results.append({"workers": workers, "seconds": round(seconds, 2),
                            "tasks_per_second": round(args.tasks / seconds, 2)})
        base = results[0]["tasks_per_second"]
        for row in results:
            row["speedup"] = round(row["tasks_per_second"] / base, 2)
            row["efficiency"] = round(row["speedup"] / row["workers"], 2)
        return results
    finally:
        topology.destroy()
        shutil.rmtree(workdir, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=60, help="tasks per run (default 60)")
    parser.add_argument("--size", type=int, default=600, help="width and height (default 600)")
    parser.add_argument("--iterations", type=int, default=800, help="iterations (default 800)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("scale.py needs root: it builds hosts in network namespaces", file=sys.stderr)
        return 2
    results = measure(args)
    if args.json:
        print(json.dumps({"cores": os.cpu_count(), "tasks": args.tasks, "size": args.size,
                          "iterations": args.iterations, "results": results}, indent=2))
        return 0
    print(f"{args.tasks} tasks of {args.size}x{args.size}, {args.iterations} iterations; "
          f"{os.cpu_count()} cores; one render thread per worker")
    print(f"{'workers':>7} {'seconds':>8} {'tasks/s':>8} {'speed-up':>9} {'efficiency':>10}")
    for row in results:
        print(f"{row['workers']:>7} {row['seconds']:>8.2f} {row['tasks_per_second']:>8.2f} "
              f"{row['speedup']:>8.2f}x {row['efficiency']:>10.0%}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
