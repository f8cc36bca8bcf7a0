"""Server time of the gallery's pages with 10 000 fractals in the database (target: < 50 ms).

Builds the API in-process on a fresh database (SQLite in a temporary
directory unless --database-url is given), fills it with fractals the way a
busy system looks (mostly done, with thumbnails; some queued, running and
failed; four workers; created over a day), then requests each page many
times. "Server time" is measured inside the ASGI app, from the request's
arrival to the last byte of its response, so the test client's own overhead
does not count; the round trip is printed beside it, and the CPU time the
process spent per request (which other load on the machine does not inflate).

    python benchmarks/gallery.py [--rows 10000] [--repeat 200] [--database-url URL]
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
import uuid as uuidlib
from collections.abc import Awaitable, Callable, MutableMapping
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import insert

from faafo.api.app import create_app
from faafo.config import ApiSettings, load_settings
from faafo.store.models import Fractal

TARGET_MS = 50.0
WORKERS = ("node-1", "node-2", "node-3", "node-4")
Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


class ServerClock:
    """ASGI middleware that records how long the app took for each HTTP request."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.last_ms = 0.0
        self.last_cpu_ms = 0.0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start, cpu = time.perf_counter(), time.process_time()
        await self.app(scope, receive, send)
        self.last_ms = (time.perf_counter() - start) * 1000
        self.last_cpu_ms = (time.process_time() - cpu) * 1000


def fake_rows(n: int, rng: random.Random) -> list[dict[str, Any]]:
    """``n`` fractals created over the last day; the newest are still in flight."""
    now = datetime.utcnow()
    thumbnail = bytes(rng.getrandbits(8) for _ in range(6000))  # a typical small PNG's size
    rows = []
    for i in range(n):
        created = now - timedelta(seconds=(n - i) * 86400 / n)
        age = n - i
        status = "queued" if age <= 20 else "running" if age <= 24 else "done"
        if status == "done" and rng.random() < 0.01:
            status = "failed"
        worker = rng.choice(WORKERS) if status != "queued" else None
        width, height = rng.randint(256, 1024), rng.randint(256, 1024)
        row: dict[str, Any] = {
            "uuid": str(uuidlib.UUID(int=rng.getrandbits(128), version=4)),
            "width": width,
            "height": height,
            "iterations": rng.randint(128, 512),
            "xa": rng.uniform(-4, -1),
            "xb": rng.uniform(1, 4),
            "ya": rng.uniform(-3, -0.5),
            "yb": rng.uniform(0.5, 3),
            "kind": "julia",
            "palette": rng.choice(("faafo", "ultra", "fire", "ocean")),
            "seed": rng.getrandbits(48),
            "status": status,
            "attempts": 0 if status == "queued" else 1,
            "worker": worker,
            "created_at": created,
            "published_at": created,
            "started_at": created + timedelta(seconds=1) if worker else None,
            "lease_until": now + timedelta(seconds=60) if status == "running" else None,
            "finished_at": created + timedelta(seconds=2) if status in ("done", "failed") else None,
            "error": "engine error" if status == "failed" else None,
        }
        if status == "done":
            row.update(
                duration=rng.uniform(0.05, 3.0),
                size=rng.randint(50_000, 900_000),
                checksum=f"{rng.getrandbits(256):064x}",
                generated_by=worker,
                c_real=rng.uniform(-1, 1),
                c_imag=rng.uniform(-1, 1),
                thumbnail=thumbnail,
            )
        rows.append(row)
    return rows


def measure(
    client: TestClient, clock: ServerClock, path: str, repeat: int
) -> tuple[list[float], list[float], list[float]]:
    """Server, round-trip and CPU times of ``repeat`` GETs of ``path``, in milliseconds."""
    for _ in range(5):  # warm caches and the connection pool
        client.get(path)
    server, round_trip, cpu = [], [], []
    for _ in range(repeat):
        start = time.perf_counter()
        response = client.get(path)
        round_trip.append((time.perf_counter() - start) * 1000)
        server.append(clock.last_ms)
        cpu.append(clock.last_cpu_ms)
        if response.status_code != 200:
            raise SystemExit(f"{path}: HTTP {response.status_code}")
    return server, round_trip, cpu


def p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20)[-1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=200)
    parser.add_argument("--database-url",
                        help="an empty database to fill (default: SQLite in a temp dir)")
    parser.add_argument("--fail-over-target", action="store_true",
                        help=f"exit 1 when a page's p95 server time is over {TARGET_MS:.0f} ms")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="faafo-bench-") as work:
        options: dict[str, Any] = {
            "data_dir": Path(work),
            "transport_url": f"memory://{uuidlib.uuid4().hex}",
            "reconcile_interval": 3600,
        }
        if args.database_url:
            options["database_url"] = args.database_url
        settings = load_settings(ApiSettings, options)
        app = create_app(settings)
        clock = ServerClock(app)
        with TestClient(clock) as client:
            rng = random.Random(7)
            rows = fake_rows(args.rows, rng)
            started = time.perf_counter()
            database = app.state.services.database
            for start in range(0, len(rows), 1000):
                with database.session() as session:
                    session.execute(insert(Fractal), rows[start : start + 1000])
            print(f"{args.rows} fractals in {settings.database_url.split(':')[0]} "
                  f"({time.perf_counter() - started:.1f} s to insert)")
            done = next(r["uuid"] for r in reversed(rows) if r["status"] == "done")
            pages = args.rows // 24 + 1
            paths = [
                "/",
                f"/index/{pages // 2}",
                f"/index/{pages}",
                "/?status=done",
                "/?worker=node-2",
                f"/index/{pages // 8}?status=done&worker=node-3",
                "/gallery/cards",
                f"/fractal/{done}/view",  # printed cut to the column
                "/v1/stats",
            ]
            header = f"{'server median':>14} {'p95':>9} {'trip p95':>9} {'CPU median':>11}"
            print(f"{'request':<40} {header}")
            slow = []
            for path in paths:
                server, round_trip, cpu = measure(client, clock, path, args.repeat)
                median, high = statistics.median(server), p95(server)
                mark = "" if high < TARGET_MS else "  over target"
                if mark:
                    slow.append(path)
                trip, used = p95(round_trip), statistics.median(cpu)
                print(f"{path[:40]:<40} {median:>11.1f} ms {high:>6.1f} ms {trip:>6.1f} ms"
                      f" {used:>8.1f} ms{mark}")
    verdict = "all under" if not slow else f"{len(slow)} over"
    print(f"target: p95 server time < {TARGET_MS:.0f} ms: {verdict}"
          f" (load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs)")
    return 1 if slow and args.fail_over_target else 0


if __name__ == "__main__":
    sys.exit(main())
