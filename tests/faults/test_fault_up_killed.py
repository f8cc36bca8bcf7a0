"""Scenario 2.6: ``kill -9`` the whole ``faafo up`` mid-run, then start it again on the
same data directory: every task completes, once.

Two ways to kill it: the whole process group at once (a power cut, an OOM
kill of the container), and only the ``faafo up`` process (``kill -9 PID``),
whose children must then leave by themselves (they get SIGTERM from the
kernel when their parent dies) rather than linger holding the port.

Defaults everywhere (no tuned lease or grace): what a user gets.
"""

from __future__ import annotations

import os
import signal
import sys
import time
import uuid as uuidlib
from pathlib import Path

import pytest

from faafo.client.http import FaafoClient
from faafo.config import embedded_database_url
from support.faults import (
    assert_done_once,
    count_done,
    read_tokens,
    small_task,
    wait_finished,
)
from support.processes import free_port, wait_http, wait_until
from support.up import UpProcess

pytestmark = pytest.mark.slow

# A deep Mandelbrot zoom where nearly every pixel runs all its iterations: about
# 0.3 s on one thread of an idle 2-core machine, so each worker is nearly always
# in the middle of a render when the kill comes; 1.8e9 pixel-iterations, under
# the default band_cost (2e9), so each task renders whole and "running" means a
# render in progress.
TASK = {
    "width": 600,
    "height": 600,
    "iterations": 5000,
    "kind": "mandelbrot",
    "xa": -0.75,
    "xb": -0.74,
    "ya": 0.1,
    "yb": 0.11,
}


TOTAL = 40


def running(client: FaafoClient, batch: str) -> int:
    try:
        return client.batch(batch)["counts"].get("running", 0)
    except Exception:
        return 0


class Up(UpProcess):
    """``faafo up`` as a user starts it (two workers), a run of its own on shared data."""

    def __init__(self, tmp_path: Path, data_dir: Path, port: int, run: int) -> None:
        super().__init__(tmp_path, "--bind-port", str(port), "--workers", "2",
                         data_dir=data_dir, log_name=f"up-{run}.log")
        self.url = f"http://127.0.0.1:{port}"

    def wait_ready(self) -> None:
        wait_http(self.url + "/readyz", timeout=90)

    def members(self) -> list[int]:
        """Live (not zombie) processes of its process group."""
        pgid = self.process.pid
        found = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            fields = stat[stat.rindex(")") + 2 :].split()
            if int(fields[2]) == pgid and fields[0] != "Z":
                found.append(int(entry.name))
        return found

    def stop(self) -> int:
        """Stopped as UpProcess stops, and whatever of its group outlived it killed."""
        code = super().stop()
        for pid in self.members():
            os.kill(pid, signal.SIGKILL)
        return code

    def tail(self) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-60:])


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def unfinished(database_url: str) -> dict[str, int]:
    """Task counts by status straight from the SQLite file (the API is dead)."""
    from sqlalchemy import create_engine, func, select

    from faafo.store.models import Fractal

    engine = create_engine(database_url)
    try:
        with engine.connect() as connection:
            return dict(
                (status, n)
                for status, n in connection.execute(
                    select(Fractal.status, func.count()).group_by(Fractal.status)
                )
            )
    finally:
        engine.dispose()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
@pytest.mark.parametrize("victim", ["process-group", "parent-only"])
def test_faafo_up_killed_mid_run_then_restarted_completes_every_task(tmp_path, victim):
    data_dir = tmp_path / "data"
    database_url = embedded_database_url(data_dir)
    port = free_port()
    first = Up(tmp_path, data_dir, port, 1)
    second: Up | None = None
    try:
        first.wait_ready()
        tokens = read_tokens(data_dir)
        batch = str(uuidlib.uuid4())
        tasks = [small_task(batch, i, **{**TASK, "yb": 0.11 + i / 1e4}) for i in range(TOTAL)]
        with FaafoClient(first.url, token=tokens["client_token"]) as client:
            uuids = [r["uuid"] for r in client.create(tasks)]
            wait_until(lambda: count_done(client, batch) >= 8, 90, message="8 tasks done")
            # Kill in the middle of a render: a task claimed and not yet delivered.
            wait_until(lambda: running(client, batch) >= 1, 30, message="a task running")
        members = first.members()
        assert len(members) >= 4, f"faafo up, its API and 2 workers: {members}"
        old_api = [pid for pid in members if b"faafo.api.main" in _cmdline(pid)]
        if victim == "process-group":
            os.killpg(first.process.pid, signal.SIGKILL)
        else:
            first.process.kill()
        killed_at = time.monotonic()
        first.process.wait(timeout=30)
        # Restart as a user would, at once; only the old API must have let go of the port.
        wait_until(lambda: not set(old_api) & set(first.members()), 30, message="the old API gone")
        counts = unfinished(database_url)
        left = counts.get("queued", 0) + counts.get("running", 0)
        assert left > 0, f"the run had ended before the kill: {counts}"
        if victim == "process-group":
            # Everything died at once: the database shows the moment of the kill.
            assert counts.get("running", 0) >= 1, f"no render was cut by the kill: {counts}"

        second = Up(tmp_path, data_dir, port, 2)
        second.wait_ready()
        restarted_at = time.monotonic()
        assert read_tokens(data_dir) == tokens, "same data directory, same tokens"
        with FaafoClient(second.url, token=tokens["client_token"]) as client:
            wait_finished(client, batch, TOTAL, timeout=180, logs=second.tail)
        recovery = time.monotonic() - restarted_at
        # No orphans for good: children of a killed faafo up finish or give back
        # their task and leave (within the workers' stop timeout, 60 s).
        wait_until(lambda: not first.members(), 90, message="every child of faafo up gone")
        gone_after = time.monotonic() - killed_at
        assert_done_once(
            second.url, uuids, database_url=database_url, worker_token=tokens["worker_token"]
        )
        print(
            f"{victim}: no child left {gone_after:.1f}s after kill -9 (checked once all were "
            f"done); {left} unfinished "
            f"({counts}); all done {recovery:.1f}s after the restart was ready"
        )
    finally:
        for up in (first, second):
            if up is not None:
                up.stop()
