"""``cloud-init schema`` on the user data of every server of every topology.

tests/deploy/test_deploy_model.py::test_user_data_passes_cloud_init_schema
checks only the scaled topology's servers; aio's single server (api, worker
and demo on one host) and split's controller/worker pair get different
install flags, roles and environment, so each is validated here too, built
the same way (that module's addresses and state helper, the same plan,
roles and render functions).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from deploy.test_deploy_model import ADDRESSES, _state
from faafo.deploy.roles import roles
from faafo.deploy.topology import plan
from faafo.deploy.userdata import render

APIS, WORKERS = 2, 2
# (topology, load balancer): scaled with Octavia drops the lb server and sends
# the workers through the VIP, so its user data differs from haproxy's.
VARIANTS = [("aio", "haproxy"), ("split", "haproxy"), ("scaled", "haproxy"), ("scaled", "octavia")]
OCTAVIA_VIP = "10.0.0.99"


def _servers() -> list[tuple[str, str, str]]:
    """Every (topology, lb, server) the plans produce, so no role is left out."""
    return [
        (topology, lb, server.name)
        for topology, lb in VARIANTS
        for server in plan(topology, APIS, WORKERS, lb=lb).servers
    ]


SERVERS = _servers()


def test_every_topology_and_role_is_covered() -> None:
    """The parametrisation below really spans each topology and each role kind."""
    assert {t for t, _, _ in SERVERS} == {"aio", "split", "scaled"}
    assert {n for t, _, n in SERVERS if t == "aio"} == {"app"}
    assert {n for t, _, n in SERVERS if t == "split"} == {"controller", "worker-1", "worker-2"}
    kinds = {
        (topology, server.kind)
        for topology, lb in VARIANTS
        for server in plan(topology, APIS, WORKERS, lb=lb).servers
    }
    assert {k for t, k in kinds if t == "scaled"} >= {"services", "api", "worker", "lb"}


def _require_cloud_init() -> None:
    if shutil.which("cloud-init") is None:
        if os.environ.get("FAAFO_REQUIRE_SERVERS") == "1":
            pytest.fail("cloud-init is not installed (apt-get install cloud-init)")
        pytest.skip("cloud-init is not installed (apt-get install cloud-init)")


@pytest.mark.parametrize(
    ("topology", "lb", "server"), SERVERS, ids=[f"{t}-{lb}-{n}" for t, lb, n in SERVERS]
)
def test_user_data_of_every_server_passes_cloud_init_schema(
    topology: str, lb: str, server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _require_cloud_init()
    state = _state(topology, tmp_path, monkeypatch)
    p = plan(topology, APIS, WORKERS, lb=lb)
    by_name = roles(p, ADDRESSES, state, lb_address=OCTAVIA_VIP if lb == "octavia" else None)
    assert set(by_name) == {s.name for s in p.servers}
    user_data = render(by_name[server])
    assert user_data.startswith("#cloud-config\n")
    path = tmp_path / f"{topology}-{server}.cfg"
    path.write_text(user_data)
    result = subprocess.run(
        ["cloud-init", "schema", "-c", str(path)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Valid cloud-config" in result.stdout, result.stdout + result.stderr


def test_cloud_init_schema_rejects_invalid_user_data(tmp_path: Path) -> None:
    """The check above can fail: cloud-init here does reject a malformed cloud-config."""
    _require_cloud_init()
    path = tmp_path / "bad.cfg"
    # write_files entries must be objects with a path; runcmd must be a list.
    path.write_text("#cloud-config\nwrite_files: [42]\nruncmd: 7\n")
    result = subprocess.run(
        ["cloud-init", "schema", "-c", str(path)], capture_output=True, text=True
    )
    assert result.returncode != 0, result.stdout + result.stderr
    assert "Valid cloud-config" not in result.stdout
