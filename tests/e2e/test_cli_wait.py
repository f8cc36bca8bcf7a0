"""``faafo create --wait`` against a real API and worker, with one task that fails.

The CLI runs as a real process. No worker runs while it creates its tasks, so
the test can fail one of them through the worker API (as a worker reports a
task it cannot render) before a worker starts and renders the rest. The CLI
must then exit non-zero, print the summary and the failure on stderr, and
keep stdout for the results: the uuids, or the JSON with ``--json``.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import uuid as uuidlib
from collections.abc import Iterator

import httpx
import pytest

from faafo.config import embedded_database_url, embedded_transport_url
from support.cluster import Cluster
from support.processes import wait_until

TASKS = 3
ARGS = ["--width", "24", "--height", "16", "--iterations", "32"]


@pytest.fixture
def cluster(tmp_path) -> Iterator[Cluster]:
    data = tmp_path / "data"
    data.mkdir()
    instance = Cluster(
        embedded_database_url(data),
        embedded_transport_url(data),
        tmp_path,
        data,
    )
    try:
        yield instance
    finally:
        instance.stop()


def start_cli(url: str, tmp_path, *argv: str) -> subprocess.Popen:
    env = {**os.environ, "FAAFO_ENDPOINT_URL": url, "XDG_CONFIG_HOME": str(tmp_path / "config")}
    env.pop("FAAFO_CLIENT_TOKEN", None)
    return subprocess.Popen(
        [sys.executable, "-m", "faafo.client.cli", "create", "--tasks", str(TASKS), *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=tmp_path,
    )


def queued(url: str) -> list[str]:
    body = httpx.get(f"{url}/v1/fractal", params={"status": "queued"}).json()
    return [row["uuid"] for row in body["objects"]]


def fail_one_then_render(cluster: Cluster, url: str, cli: subprocess.Popen) -> str:
    """Once the CLI's tasks exist, fail one as a worker would; then a worker renders the rest."""
    wait_until(
        lambda: cli.poll() is not None or len(queued(url)) == TASKS, 120, message="the tasks"
    )
    assert cli.poll() is None, cli.communicate()
    victim = queued(url)[0]
    reported = httpx.post(
        f"{url}/v1/worker/failures",
        json=[{"uuid": victim, "error": "render failed: test", "worker": "test"}],
    )
    assert reported.json() == {"failed": 1}, reported.text
    worker = cluster.start_worker()
    try:
        cli.wait(timeout=240)
    finally:
        worker.stop()
    return victim


def create_wait_with_one_failure(
    cluster, tmp_path, *extra: str
) -> tuple[str, str, int, str, str]:
    """``faafo create ... --wait EXTRA`` while one task fails: (url, victim, exit, out, err)."""
    url = cluster.start_api()
    cli = start_cli(url, tmp_path, *ARGS, "--wait", *extra)
    try:
        victim = fail_one_then_render(cluster, url, cli)
        out, err = cli.communicate(timeout=60)
    finally:
        if cli.poll() is None:
            cli.kill()
            cli.communicate()
    return url, victim, cli.returncode, out, err


def test_create_wait_reports_the_failed_task_and_exits_non_zero(cluster, tmp_path):
    url, victim, code, out, err = create_wait_with_one_failure(cluster, tmp_path)
    assert code == 1, err
    uuids = out.split()
    assert len(uuids) == TASKS and victim in uuids
    assert all(str(uuidlib.UUID(u)) == u for u in uuids), out  # nothing but the uuids
    assert re.search(r"^2 done, 1 failed in \d+\.\d s$", err, re.MULTILINE), err
    assert f"failed: {victim}: render failed: test (worker test)" in err
    assert "rendering" in err  # the progress bar went to stderr
    statuses = {u: httpx.get(f"{url}/v1/fractal/{u}").json()["status"] for u in uuids}
    assert sorted(statuses.values()) == ["done", "done", "failed"]


def test_create_wait_json_gives_the_final_records_and_exits_non_zero(cluster, tmp_path):
    _, victim, code, out, err = create_wait_with_one_failure(cluster, tmp_path, "--json")
    assert code == 1, err
    body = json.loads(out)
    statuses = {row["uuid"]: row["status"] for row in body["objects"]}
    assert len(statuses) == TASKS and statuses.pop(victim) == "failed"
    assert set(statuses.values()) == {"done"}
    assert all(row["batch"] == body["batch"] for row in body["objects"])


def test_create_without_wait_prints_only_the_uuids(cluster, tmp_path):
    url = cluster.start_api()
    cli = start_cli(url, tmp_path, *ARGS)
    out, err = cli.communicate(timeout=120)
    assert cli.returncode == 0, err
    assert sorted(out.split()) == sorted(queued(url))
    assert err.strip() == f"generating {TASKS} task(s)"
