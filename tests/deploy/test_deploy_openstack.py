"""``faafo deploy`` on the OpenStack test bed, through the command line as a user runs it.

No guest boots on the bed, so where a booted server would signal Heat the test
does it, with the handle's own endpoint and token. Every test counts the
project's servers, ports, floating IPs, groups and key pairs before and after,
so "down leaves nothing" is measured, not assumed.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from faafo.deploy.topology import groups, plan
from faafo.deploy.userdata import install_script_path

pytestmark = [pytest.mark.openstack, pytest.mark.timeout(600)]

CLI = [sys.executable, "-c", "import sys; from faafo.client.cli import main; sys.exit(main())"]


def _name(prefix: str) -> str:
    return f"t{prefix}{uuid.uuid4().hex[:6]}"


@pytest.fixture
def deploy(openstack_bed, tmp_path: Path, key_file: Path):  # type: ignore[no-untyped-def]
    """Run ``faafo deploy ARGS`` against the bed as the demo user; returns the result."""
    env = {**os.environ, **openstack_bed.env(), "FAAFO_DEPLOY_STATE": str(tmp_path / "state")}

    def run(*args: str, check: bool = True, background: bool = False) -> Any:
        argv = [*CLI, "deploy", *args]
        if args and args[0] == "up" and "--key-file" not in args:
            argv += ["--key-file", str(key_file)]
        if background:
            return subprocess.Popen(
                argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
            )
        result = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=500)
        if check:
            assert result.returncode == 0, result.stdout + result.stderr
        return result

    return run


def _inventory(demo: Any, name: str) -> dict[str, set[str]]:
    """What deployment ``name`` has in the demo project, by id.

    Scoped to the name, since other tests may share the project: servers, ports,
    groups, stacks and key pairs by name or description, floating IPs by
    description or by the port they are on.
    """

    def named(items: Any) -> set[str]:
        return {
            i.id
            for i in items
            if (i.name or "").startswith(name) or name in (getattr(i, "description", "") or "")
        }

    ports = named(demo.network.ports())
    return {
        "servers": named(demo.compute.servers()),
        "ports": ports,
        "floating_ips": {
            f.id for f in demo.network.ips() if f.port_id in ports or name in (f.description or "")
        },
        "groups": named(demo.network.security_groups()),
        "keypairs": {k.name for k in demo.compute.keypairs() if k.name.startswith(name)},
        "stacks": named(demo.orchestration.stacks()),
    }


def _everything(demo: Any) -> dict[str, set[str]]:
    """Every id of the project, to check that nothing seen during a test survives it."""
    return {
        "servers": {s.id for s in demo.compute.servers()},
        "ports": {p.id for p in demo.network.ports()},
        "floating_ips": {f.id for f in demo.network.ips()},
        "groups": {g.id for g in demo.network.security_groups()},
        "keypairs": {k.name for k in demo.compute.keypairs()},
        "stacks": {s.id for s in demo.orchestration.stacks()},
    }


def _merge(a: dict[str, set[str]], b: dict[str, set[str]]) -> dict[str, set[str]]:
    return {k: a.get(k, set()) | b.get(k, set()) for k in {*a, *b}}


def _none_left(demo: Any, name: str, seen: dict[str, set[str]], before: dict) -> None:
    """Down left the project as it was: nothing named ours, nothing we saw still there."""
    assert _inventory(demo, name) == before
    now = _everything(demo)
    assert {kind: ids & now[kind] for kind, ids in seen.items()} == {k: set() for k in seen}


def _servers(demo: Any, name: str) -> dict[str, Any]:
    return {s.name[len(name) + 1 :]: s for s in demo.compute.servers(name=f"^{name}-")}


def _created(result: Any) -> int:
    line = next(x for x in result.stderr.splitlines() if "created" in x and "deleted" in x)
    return int(line.split("created")[1].split(",")[0])


def _check_deployment(demo: Any, admin: Any, name: str, topology: str, workers: int) -> None:
    """Servers ACTIVE in the right group, every rule, floating IPs, user data."""
    p = plan(topology, 2, workers)
    servers = _servers(demo, name)
    assert sorted(servers) == sorted(s.name for s in p.servers)
    by_group = {g.name: demo.network.find_security_group(f"{name}-{g.name}") for g in p.groups}
    ids = {short: g.id for short, g in by_group.items()}
    for group in groups(topology):
        rules = {
            (r.protocol, r.port_range_min, r.port_range_max, r.remote_group_id, r.remote_ip_prefix)
            for r in demo.network.security_group_rules(security_group_id=ids[group.name])
            if r.direction == "ingress"
        }
        assert rules == {
            (
                "tcp",
                r.port,
                r.port,
                ids.get(r.remote_group or ""),
                None if r.remote_group else "0.0.0.0/0",
            )
            for r in group.rules
        }
    script = install_script_path().read_text()
    for spec in p.servers:
        server = servers[spec.name]
        assert server.status == "ACTIVE"
        [port] = list(demo.network.ports(device_id=server.id))
        assert port.security_group_ids == [ids[spec.group]]
        fips = list(demo.network.ips(port_id=port.id))
        assert len(fips) == (1 if spec.public else 0), spec.name
        user_data = base64.b64decode(admin.compute.get_server(server.id).user_data).decode()
        assert user_data.startswith("#cloud-config")
        doc = json.loads(user_data.split("\n", 1)[1])
        assert base64.b64decode(doc["write_files"][0]["content"]).decode() == script
        command = " ".join(doc["runcmd"][0])
        for flag in spec.install:
            assert f"-i {flag}" in command
        for role in spec.roles:
            assert f"-r {role}" in command


@pytest.mark.parametrize("topology", ["aio", "split", "scaled"])
def test_topology_up_converge_scale_down(topology, deploy, openstack_demo, openstack_admin):
    demo, name = openstack_demo, _name(topology)
    before = _inventory(demo, name)
    seen: dict[str, set[str]] = {}
    try:
        started = time.monotonic()
        result = deploy("up", "--topology", topology, "--name", name, "--workers", "2")
        print(f"{topology}: up in {time.monotonic() - started:.1f} s")
        assert "app URL: http://203.0.113." in result.stdout
        workers = 0 if topology == "aio" else 2
        _check_deployment(demo, openstack_admin, name, topology, workers)
        seen = _inventory(demo, name)

        settled = _inventory(demo, name)
        again = deploy("up", "--name", name)
        assert _created(again) == 0
        assert _inventory(demo, name) == settled
        status = deploy("status", "--name", name)
        assert f"{name}-" in status.stdout and "ACTIVE" in status.stdout
        if topology != "aio":
            deploy("up", "--name", name, "--workers", "3")
            _check_deployment(demo, openstack_admin, name, topology, 3)
            seen = _merge(seen, _inventory(demo, name))
            deploy("up", "--name", name, "--workers", "1")
            _check_deployment(demo, openstack_admin, name, topology, 1)
    finally:
        deploy("down", "--name", name, check=False)
    _none_left(demo, name, seen, before)


def test_interrupted_up_is_finished_by_the_next(deploy, openstack_demo, openstack_admin):
    demo, name = openstack_demo, _name("kill")
    before = _inventory(demo, name)
    seen: dict[str, set[str]] = {}
    try:
        process = deploy(
            "up", "--topology", "scaled", "--name", name, "--workers", "2", background=True
        )
        # Killed as soon as its first server exists (it says so before the second).
        created = 0
        for line in process.stderr:
            created += "creating server" in line
            if created == 2:
                break
        process.send_signal(signal.SIGKILL)
        process.wait()
        assert 1 <= len(_servers(demo, name)) < 6
        deploy("up", "--name", name)
        _check_deployment(demo, openstack_admin, name, "scaled", 2)
        assert len(list(demo.compute.servers(name=f"^{name}-"))) == 6  # no duplicates
        seen = _inventory(demo, name)
    finally:
        deploy("down", "--name", name, check=False)
    _none_left(demo, name, seen, before)


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--image", "no-such-image"], "image 'no-such-image' not found"),
        (["--flavor", "no-such-flavor"], "flavor 'no-such-flavor' not found"),
        (["--network", "no-such-net"], "network 'no-such-net' not found"),
        (["--key-file", "/no/such/key.pub"], "key file /no/such/key.pub not found"),
    ],
)
def test_missing_resources_are_one_line_errors(flags, message, deploy, openstack_demo):
    name = _name("err")
    before = _inventory(openstack_demo, name)
    result = deploy("up", "--name", name, *flags, check=False)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == f"faafo: error: {message} ({flags[0]})"
    assert "Traceback" not in result.stderr
    assert _inventory(openstack_demo, name) == before


# ---------------------------------------------------------------- Heat


def _resource(demo: Any, stack: Any, name: str) -> dict[str, Any] | None:
    response = demo.orchestration.get(f"/stacks/{stack.name}/{stack.id}/resources/{name}")
    return response.json()["resource"] if response.status_code == 200 else None


def _eventually(probe, what: str, timeout: float = 180.0):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(1)
    raise AssertionError(f"timed out waiting for {what}")


def _outputs(demo: Any, stack_id: str) -> dict[str, Any]:
    stack = demo.orchestration.get_stack(stack_id)
    return {o["output_key"]: o.get("output_value") for o in stack.outputs or []}


SIGNALS = {"aio": ["app"], "split": ["controller"], "scaled": ["services", "api-1", "api-2", "lb"]}


@pytest.mark.parametrize("topology", ["aio", "split", "scaled"])
def test_heat_stack(topology, deploy, openstack_demo, openstack_admin):
    import requests

    demo, name = openstack_demo, _name(f"heat{topology}")
    before = _inventory(demo, name)
    seen: dict[str, set[str]] = {}
    try:
        started = time.monotonic()
        process = deploy(
            "up",
            "--heat",
            "--topology",
            topology,
            "--name",
            name,
            "--workers",
            "1",
            background=True,
        )
        stack = _eventually(lambda: demo.orchestration.find_stack(name), "the stack")
        handle = _eventually(
            lambda: (
                (r := _resource(demo, stack, "ready_handle"))
                and r["resource_status"] == "CREATE_COMPLETE"
                and r
            ),
            "the wait handle",
        )
        endpoint, token = handle["attributes"]["endpoint"], handle["attributes"]["token"]
        # The guest's user data carries the handle: play the guest.
        for who in SIGNALS[topology]:
            response = requests.post(
                endpoint,
                headers={"X-Auth-Token": token},
                timeout=30,
                json={"status": "SUCCESS", "id": who, "data": "up"},
            )
            assert response.status_code == 200, response.text
        out, err = process.communicate(timeout=400)
        assert process.returncode == 0, out + err
        print(f"heat {topology}: up in {time.monotonic() - started:.1f} s")
        seen = _inventory(demo, name)
        assert "app_url: http://203.0.113." in out
        stack = demo.orchestration.find_stack(name)
        assert stack.status == "CREATE_COMPLETE"
        outputs = _outputs(demo, stack.id)
        server = _resource(
            demo,
            stack,
            "server" if topology == "aio" else "controller" if topology == "split" else "lb",
        )
        assert server is not None
        user_data = base64.b64decode(
            openstack_admin.compute.get_server(server["physical_resource_id"]).user_data
        ).decode()
        assert endpoint in user_data and "faafo-install" in user_data
        if topology == "scaled":
            assert outputs["workers_size"] == 1
            assert requests.post(outputs["scale_up_url"], timeout=60).status_code == 200
            _eventually(lambda: _outputs(demo, stack.id)["workers_size"] == 2, "scale-up")
            assert requests.post(outputs["scale_down_url"], timeout=60).status_code == 200
            _eventually(lambda: _outputs(demo, stack.id)["workers_size"] == 1, "scale-down")
        status = deploy("status", "--name", name)
        assert "CREATE_COMPLETE" in status.stdout or "UPDATE_COMPLETE" in status.stdout
    finally:
        deploy("down", "--name", name, "--heat", check=False)
    _none_left(demo, name, seen, before)


def test_autoscale_backend_resizes_a_deployment(
    deploy, openstack_bed, openstack_demo, tmp_path, monkeypatch
):
    """``faafo autoscale --backend deploy``'s back end on a real deployment."""
    from faafo.deploy.scaling import DeployedWorkers

    demo, name = openstack_demo, _name("auto")
    before = _inventory(demo, name)
    seen: dict[str, set[str]] = {}
    for key, value in openstack_bed.env().items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("FAAFO_DEPLOY_STATE", str(tmp_path / "state"))
    try:
        deploy("up", "--topology", "split", "--name", name, "--workers", "1")
        workers = DeployedWorkers(cloud=None, name=name)
        assert workers.current() == 1
        workers.resize(2)
        assert workers.current() == 2
        seen = _inventory(demo, name)
        assert sorted(_servers(demo, name)) == ["controller", "worker-1", "worker-2"]
        workers.resize(1)
        assert workers.current() == 1
    finally:
        deploy("down", "--name", name, check=False)
    _none_left(demo, name, seen, before)
