"""The user data's own script, run on a fresh host of the network-namespace harness.

No guest boots on the OpenStack test bed, so this is where the user data is
proven: a scaled deployment's worker user data, rendered with the harness's
addresses and secrets, is unpacked as cloud-init would (the embedded script,
the environment file, the command line) and run on a new host in the worker
group; with the other workers stopped, a batch that finishes proves it joined.
"""

from __future__ import annotations

import base64
import json
import shlex
import sys
import uuid
from pathlib import Path

import pytest

from faafo.deploy.roles import roles
from faafo.deploy.state import Secrets, State
from faafo.deploy.topology import plan
from faafo.deploy.userdata import GUEST_SCRIPT, render
from multihost.topology import SERVICES, Topology, api_address, worker_address

pytestmark = [pytest.mark.multihost, pytest.mark.timeout(300)]

TASK = {
    "kind": "mandelbrot",
    "xa": -0.8,
    "xb": -0.6,
    "ya": 0.0,
    "yb": 0.2,
    "width": 300,
    "height": 300,
    "iterations": 200,
}


def _unpack(user_data: str, into: Path) -> tuple[Path, dict[str, str], list[str]]:
    """What cloud-init would do with the document: the script, the env file, the argv."""
    doc = json.loads(user_data.split("\n", 1)[1])
    script_file, env_file = doc["write_files"]
    script = into / "faafo-install"
    script.write_bytes(base64.b64decode(script_file["content"]))
    env = dict(line.split("=", 1) for line in env_file["content"].splitlines())
    env = {k: v.strip("'") for k, v in env.items()}
    command = doc["runcmd"][0][2]
    argv = shlex.split(command.split(f"exec {GUEST_SCRIPT}", 1)[1])
    return script, env, argv


def test_worker_user_data_brings_a_worker_that_joins(cluster: Topology, tmp_path: Path) -> None:
    state = State(
        name="hosts",
        topology="scaled",
        workers=1,
        secrets=Secrets(
            broker_password=cluster.mq_password,
            database_password=cluster.db_password,
            client_token=cluster.client_token,
            worker_token=cluster.worker_token,
        ),
    )
    addresses = {
        "services": SERVICES,
        "api-1": api_address(1),
        "api-2": api_address(2),
        "worker-1": worker_address(9),
        "lb": "10.99.0.10",
    }
    user_data = render(roles(plan("scaled", 2, 1), addresses, state)["worker-1"])
    script, env, argv = _unpack(user_data, tmp_path)
    assert argv == ["-i", "faafo", "-r", "worker"]

    name = "worker-9"
    cluster.add_host(name, worker_address(9), "worker")
    try:
        for n in (1, 2, 3):
            cluster.stop_role(f"worker-{n}", "faafo-worker")
        harness = {
            "FAAFO_PREFIX": str(cluster.host(name).root),
            "FAAFO_PYTHON": sys.executable,
            "FAAFO_NO_APT": "1",
            "FAAFO_SUPERVISOR": "background",
            "FAAFO_STOP_TIMEOUT": "20",
        }
        cluster.host(name).run(["bash", str(script), *argv], env={**env, **harness}, timeout=240)
        batch = str(uuid.uuid4())
        cluster.create([{**TASK, "batch": batch} for _ in range(3)])
        status = cluster.wait_batch(batch, 3, timeout=180)
        assert status["counts"] == {"done": 3}, status
    finally:
        if cluster.pid(name, "faafo-worker") is not None:
            cluster.stop_role(name, "faafo-worker")
        cluster.network.remove_host(name)
