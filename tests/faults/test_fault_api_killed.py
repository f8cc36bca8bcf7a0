"""Scenario 2.2: ``kill -9`` the API between its database commit and its publish,
and while workers are uploading results.

Between commit and publish the tasks exist but no message does: only the
reconciler of the next API process (``published_at`` still empty after
``publish_grace_seconds``) can bring them back. During uploads the worker
keeps its message unacknowledged and retries until an API confirms; a store
that was committed just before the kill is answered ``duplicate`` on retry.
"""

from __future__ import annotations

import re
import threading
import time
import uuid as uuidlib
from pathlib import Path

import httpx
import pytest

from support.faults import (
    FaultCluster,
    assert_done_once,
    batch_total,
    embedded_urls,
    small_task,
    wait_finished,
)
from support.processes import free_port, wait_until

pytestmark = pytest.mark.slow



def unpublished(database_url: str, uuids: list[str]) -> int:
    """Tasks of ``uuids`` the database has but never recorded as published."""
    from sqlalchemy import create_engine, func, select

    from faafo.store.models import Fractal

    engine = create_engine(database_url)
    try:
        with engine.connect() as connection:
            return connection.scalar(
                select(func.count()).where(Fractal.uuid.in_(uuids), Fractal.published_at.is_(None))
            )
    finally:
        engine.dispose()


def queue_depth(transport_url: str) -> int:
    from faafo.messaging.publisher import Publisher

    publisher = Publisher(transport_url)
    try:
        return publisher.queue_depth()
    finally:
        publisher.close()


def test_api_killed_between_commit_and_publish(tmp_path):
    database_url, transport_url = embedded_urls(tmp_path / "data")
    cluster = FaultCluster(
        database_url,
        transport_url,
        tmp_path,
        tmp_path / "data",
        extra_api_args=["--publish-grace-seconds", "1", "--reconcile-interval", "0.5"],
    )
    try:
        port = free_port()
        url = cluster.restart_api(port, "--test-delay-before-publish", "60")
        worker = cluster.start_worker("w1")
        batch = str(uuidlib.uuid4())
        tasks = [small_task(batch, i, uuid=str(uuidlib.uuid4())) for i in range(20)]
        uuids = [t["uuid"] for t in tasks]
        answer: dict[str, object] = {}

        def create() -> None:
            try:
                answer["status"] = httpx.post(f"{url}/v1/fractal", json=tasks, timeout=90)
            except httpx.HTTPError as error:
                answer["error"] = error

        request = threading.Thread(target=create)
        request.start()
        with cluster.client() as client:
            wait_until(lambda: batch_total(client, batch) == 20, 30, message="the tasks committed")
        cluster.apis[0].kill()
        request.join(timeout=30)
        assert "error" in answer, f"the client got an answer from a killed API: {answer}"
        # The precondition of the scenario: committed, never published, no message.
        assert unpublished(database_url, uuids) == 20
        assert queue_depth(transport_url) == 0
        time.sleep(2)
        assert "claimed" not in worker.tail(200), "a worker got a task nobody published"

        restarted_at = time.monotonic()
        cluster.restart_api(port)
        with cluster.client() as client:
            wait_finished(client, batch, 20, timeout=60, logs=cluster.logs)
        recovery = time.monotonic() - restarted_at
        assert_done_once(url, uuids, database_url=database_url)
        assert "re-published 20 task(s)" in cluster.apis[-1].tail(200), cluster.logs()
        print(f"recovered {recovery:.1f}s after the API came back")
    finally:
        cluster.stop()


# A mid-request failure of an upload, as the worker logs it (not a refused connection:
# that only says the API was already down when the upload started).
_CUT_UPLOAD = re.compile(
    r"API call POST /v1/worker/results failed \([^)]*: (RemoteProtocolError|ReadError|"
    r"WriteError|ReadTimeout)"
)


_TASK = re.compile(r"\[task ([0-9a-f-]{36})\]")


class LogWatch:
    """Notices, within a couple of milliseconds, a new line matching a pattern in some logs."""

    def __init__(self, paths: list[Path], pattern: str) -> None:
        self.pattern = re.compile(pattern.encode())
        self.offsets = {path: path.stat().st_size if path.exists() else 0 for path in paths}

    def wait(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for path, offset in self.offsets.items():
                with open(path, "rb") as handle:
                    handle.seek(offset)
                    new = handle.read()
                if b"\n" in new:
                    complete = new[: new.rindex(b"\n") + 1]
                    self.offsets[path] = offset + len(complete)
                    if self.pattern.search(complete):
                        return True
            time.sleep(0.002)
        return False


def test_api_killed_during_result_uploads(tmp_path):
    database_url, transport_url = embedded_urls(tmp_path / "data")
    cluster = FaultCluster(
        database_url,
        transport_url,
        tmp_path,
        tmp_path / "data",
        extra_api_args=[
            "--bundle-cost",
            "0",  # one message, so one upload, per task
            "--publish-grace-seconds",
            "1",
            "--reconcile-interval",
            "0.5",
            # Far longer than the test: if a worker dropped a message whose upload
            # was cut, no lease expiry would rescue the task.
            "--lease-seconds",
            "600",
        ],
    )
    try:
        port = free_port()
        url = cluster.start_api(port)
        for name in ("w1", "w2"):
            cluster.start_worker(name, "--render-threads", "1", "--upload-retry-seconds", "90")
        batch = str(uuidlib.uuid4())
        shape = {"width": 1000, "height": 1000, "iterations": 200, "c_real": -0.8, "c_imag": 0.156}
        kills = cut = 0
        with cluster.client() as client:
            uuids = [
                r["uuid"]
                for r in client.create(
                    [small_task(batch, i, **shape, xa=-1.6 - i / 100) for i in range(40)]
                )
            ]
            while kills < 3 or (cut == 0 and kills < 8):
                # A worker logs "rendered" just before it uploads: kill the API then.
                watch = LogWatch([w.log_path for w in cluster.workers], r"rendered \d+x\d+")
                if not watch.wait(60):
                    break  # nothing left to render
                cluster.live_apis[0].kill()
                kills += 1
                time.sleep(0.5)
                cluster.restart_api(port)
                cut = sum(len(_CUT_UPLOAD.findall(w.tail(5000))) for w in cluster.workers)
            wait_finished(client, batch, 40, timeout=120, logs=cluster.logs)
        assert cut >= 1, f"no upload was cut by {kills} kills\n{cluster.logs()}"
        assert all(w.alive() for w in cluster.workers), "workers rode out the kills"
        assert_done_once(url, uuids, database_url=database_url)
        for api in cluster.apis:
            assert "passed their lease" not in api.tail(100_000), f"{api.name} rescued a task"
        # Each task whose upload was cut: the same worker retried it until an API
        # confirmed it (stored, or duplicate when the kill came after the commit),
        # with no second claim.
        cut_tasks: set[str] = set()
        for worker in cluster.workers:
            lines = worker.log_path.read_text().splitlines()
            for index, line in enumerate(lines):
                found = _CUT_UPLOAD.search(line) and _TASK.search(line)
                if not found:
                    continue
                uuid = found.group(1)
                cut_tasks.add(uuid)
                confirmed = [
                    later
                    for later in lines[index + 1 :]
                    if later.split(" [task ")[0].endswith(
                        ("delivered: stored", "delivered: duplicate")
                    )
                    and f"[task {uuid}]" in later
                ]
                assert confirmed, f"{worker.name} never got the cut upload of {uuid} confirmed"
        with cluster.client() as client:
            for uuid in cut_tasks:
                record = client.get(uuid)
                assert record["attempts"] == 1, record
        print(f"{kills} kills, {cut} upload(s) cut mid-request ({len(cut_tasks)} tasks)")
    finally:
        cluster.stop()
