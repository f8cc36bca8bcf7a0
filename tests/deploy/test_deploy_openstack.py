"""``faafo deploy`` on the OpenStack test bed, through the command line as a user runs it.

No guest boots on the bed, so where a booted server would signal Heat the test
does it, with the handle's own endpoint and token. Every test counts the
project's servers, ports, floating IPs, groups, key pairs and (on a bed with
Octavia) load balancers before and after, so "down leaves nothing" is
measured, not assumed.
"""

from __future__ import annotations

import base64
import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from faafo.deploy.topology import HTTP, groups, plan
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

    balancers = _load_balancers(demo)
    lbs = named(balancers)
    # Octavia makes the VIP port (octavia-lb-ID, in our project) for us.
    ports = named(demo.network.ports()) | {
        b.vip_port_id for b in balancers if b.id in lbs and b.vip_port_id
    }
    return {
        "servers": named(demo.compute.servers()),
        "ports": ports,
        "floating_ips": {
            f.id for f in demo.network.ips() if f.port_id in ports or name in (f.description or "")
        },
        "groups": named(demo.network.security_groups()),
        "keypairs": {k.name for k in demo.compute.keypairs() if k.name.startswith(name)},
        "stacks": named(demo.orchestration.stacks()),
        "load_balancers": lbs,
    }


def _load_balancers(demo: Any) -> list[Any]:
    """The project's Octavia load balancers; none on a cloud without Octavia."""
    return list(demo.load_balancer.load_balancers()) if demo.has_service("load-balancer") else []


def _everything(demo: Any) -> dict[str, set[str]]:
    """Every id of the project, to check that nothing seen during a test survives it."""
    return {
        "servers": {s.id for s in demo.compute.servers()},
        "ports": {p.id for p in demo.network.ports()},
        "floating_ips": {f.id for f in demo.network.ips()},
        "groups": {g.id for g in demo.network.security_groups()},
        "keypairs": {k.name for k in demo.compute.keypairs()},
        "stacks": {s.id for s in demo.orchestration.stacks()},
        "load_balancers": {b.id for b in _load_balancers(demo)},
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


def _check_deployment(
    demo: Any,
    admin: Any,
    name: str,
    topology: str,
    workers: int,
    apis: int = 2,
    lb: str = "haproxy",
) -> dict[str, dict]:
    """Servers ACTIVE in the right group, every rule, floating IPs, user data.

    Returns each server's decoded user data (its cloud-config) by short name.
    """
    p = plan(topology, apis, workers, lb=lb)
    servers = _servers(demo, name)
    assert sorted(servers) == sorted(s.name for s in p.servers)
    by_group = {g.name: demo.network.find_security_group(f"{name}-{g.name}") for g in p.groups}
    assert all(by_group.values()), by_group
    ours = {g.name for g in demo.network.security_groups() if g.name.startswith(f"{name}-")}
    assert ours == {f"{name}-{g.name}" for g in p.groups}  # no group left over
    ids = {short: g.id for short, g in by_group.items()}
    for group in groups(topology, lb):
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
    docs = {}
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
        docs[spec.name] = doc
        assert base64.b64decode(doc["write_files"][0]["content"]).decode() == script
        command = " ".join(doc["runcmd"][0])
        for flag in spec.install:
            assert f"-i {flag}" in command
        for role in spec.roles:
            assert f"-r {role}" in command
    return docs


@pytest.mark.parametrize("topology", ["aio", "split", "scaled"])
def test_topology_up_converge_scale_down(topology, deploy, openstack_demo, openstack_admin):
    """Each topology; scaled with its HAProxy server (``--lb haproxy``)."""
    demo, name = openstack_demo, _name(topology)
    before = _inventory(demo, name)
    seen: dict[str, set[str]] = {}
    lb = ["--lb", "haproxy"] if topology == "scaled" else []
    try:
        started = time.monotonic()
        result = deploy("up", "--topology", topology, "--name", name, "--workers", "2", *lb)
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
        if topology == "scaled":
            assert "load balancer: haproxy (--lb haproxy)" in status.stdout
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
            "up",
            "--topology",
            "scaled",
            "--name",
            name,
            "--workers",
            "2",
            "--lb",
            "haproxy",
            background=True,
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


# ---------------------------------------------------------------- Octavia


def _needs_octavia(bed: Any) -> None:
    if not bed.has_octavia:
        pytest.skip("the bed runs without Octavia (bed.py up --without octavia)")


def _check_octavia(demo: Any, name: str, apis: int) -> Any:
    """The load balancer exactly as issue 8 has it; returns it."""
    [lb] = [b for b in demo.load_balancer.load_balancers() if b.name == f"{name}-lb"]
    assert (lb.provisioning_status, lb.description) == ("ACTIVE", f"faafo-deploy:{name}")
    assert f"faafo-deploy:{name}" in lb.tags
    subnet = demo.network.find_subnet("private-subnet")
    assert (lb.vip_subnet_id, lb.vip_network_id) == (subnet.id, subnet.network_id)
    [listener] = [demo.load_balancer.get_listener(x["id"]) for x in lb.listeners]
    assert (listener.protocol, listener.protocol_port) == ("HTTP", HTTP)
    assert listener.provisioning_status == "ACTIVE"
    [pool] = [demo.load_balancer.get_pool(x["id"]) for x in lb.pools]
    assert (pool.protocol, pool.lb_algorithm, pool.provisioning_status) == (
        "HTTP",
        "ROUND_ROBIN",
        "ACTIVE",
    )
    assert [x["id"] for x in pool.listeners] == [listener.id]
    monitor = demo.load_balancer.get_health_monitor(pool.health_monitor_id)
    assert (
        monitor.type,
        monitor.http_method,
        monitor.url_path,
        monitor.expected_codes,
        monitor.provisioning_status,
    ) == ("HTTP", "GET", "/readyz", "200", "ACTIVE")
    api_ports = {
        short: demo.network.find_port(f"{name}-{short}").fixed_ips[0]["ip_address"]
        for short in (f"api-{i}" for i in range(1, apis + 1))
    }
    members = {
        m.name: (m.address, m.protocol_port, m.provisioning_status)
        for m in demo.load_balancer.members(pool.id)
    }
    assert members == {
        f"{name}-{short}": (address, HTTP, "ACTIVE") for short, address in api_ports.items()
    }
    # The VIP is a real neutron port of the project, with our floating IP on it.
    vip = demo.network.get_port(lb.vip_port_id)
    assert vip.fixed_ips[0]["ip_address"] == lb.vip_address
    [fip] = list(demo.network.ips(port_id=vip.id))
    assert (fip.fixed_ip_address, fip.description) == (lb.vip_address, f"faafo-deploy:{name}")
    return lb


def test_scaled_with_octavia_up_converge_apis_down(
    deploy, openstack_bed, openstack_demo, openstack_admin
):
    """``--lb auto`` on a cloud with Octavia: an Octavia load balancer, no lb server."""
    _needs_octavia(openstack_bed)
    demo, name = openstack_demo, _name("oct")
    before = _inventory(demo, name)
    seen: dict[str, set[str]] = {}
    try:
        started = time.monotonic()
        deploy("up", "--topology", "scaled", "--name", name, "--workers", "1")
        print(f"scaled with Octavia: up in {time.monotonic() - started:.1f} s")
        docs = _check_deployment(demo, openstack_admin, name, "scaled", 1, lb="octavia")
        lb = _check_octavia(demo, name, apis=2)
        seen = _inventory(demo, name)
        assert len(seen["load_balancers"]) == 1
        # Workers deliver results through the VIP.
        env = docs["worker-1"]["write_files"][1]["content"]
        assert f"FAAFO_ENDPOINT_URL='http://{lb.vip_address}:{HTTP}'" in env
        fip = next(iter(demo.network.ips(port_id=lb.vip_port_id))).floating_ip_address
        status = deploy("status", "--name", name)
        assert f"app URL: http://{fip}/" in status.stdout
        assert "load balancer: octavia (--lb auto)" in status.stdout
        assert f"{name}-lb" in status.stdout and lb.vip_address in status.stdout
        assert "ACTIVE/" in status.stdout  # provisioning/operating status

        again = deploy("up", "--name", name)
        assert _created(again) == 0
        assert _inventory(demo, name) == seen

        deploy("up", "--name", name, "--apis", "3")
        _check_deployment(demo, openstack_admin, name, "scaled", 1, apis=3, lb="octavia")
        assert _check_octavia(demo, name, apis=3).id == lb.id
        seen = _merge(seen, _inventory(demo, name))
    finally:
        deploy("down", "--name", name, check=False)
    _none_left(demo, name, seen, before)


def test_lb_auto_follows_the_catalog_and_haproxy_is_kept_on_request(
    deploy, openstack_bed, openstack_demo, openstack_admin
):
    """What ``auto`` chose is what the catalog offers; ``--lb haproxy`` wins over it,
    and switching a deployment between the two converges (nothing of the other left)."""
    from faafo.deploy.octavia import resolve

    demo, name = openstack_demo, _name("lbsw")
    access = demo.session.auth.get_access(demo.session)
    catalog = {entry["type"] for entry in access.service_catalog.catalog}
    expected = "octavia" if "load-balancer" in catalog else "haproxy"
    assert openstack_bed.has_octavia == ("load-balancer" in catalog)
    assert resolve(demo, "auto") == expected
    assert resolve(demo, "haproxy") == "haproxy"
    before = _inventory(demo, name)
    seen: dict[str, set[str]] = {}
    try:
        deploy("up", "--topology", "scaled", "--name", name, "--workers", "0", "--lb", "haproxy")
        _check_deployment(demo, openstack_admin, name, "scaled", 0, lb="haproxy")
        assert _inventory(demo, name)["load_balancers"] == set()
        seen = _inventory(demo, name)
        status = deploy("status", "--name", name)
        assert "load balancer: haproxy (--lb haproxy)" in status.stdout
        switched = deploy("up", "--name", name, "--lb", "auto")
        _check_deployment(demo, openstack_admin, name, "scaled", 0, lb=expected)
        assert f"load balancer: {expected} (--lb auto)" in switched.stdout
        if expected == "octavia":
            _check_octavia(demo, name, apis=2)
            assert "lb" not in _servers(demo, name)
        seen = _merge(seen, _inventory(demo, name))
    finally:
        deploy("down", "--name", name, check=False)
    _none_left(demo, name, seen, before)


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


def _heat_up(deploy: Any, demo: Any, topology: str, name: str) -> tuple[str, str]:
    """``faafo deploy up --heat``, playing the booted guests that signal the wait handle.

    Returns what the command printed and the handle's endpoint.
    """
    import requests

    process = deploy(
        "up", "--heat", "--topology", topology, "--name", name, "--workers", "1", background=True
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
    return out, endpoint


@pytest.mark.parametrize("topology", ["aio", "split", "scaled"])
def test_heat_stack(topology, deploy, openstack_demo, openstack_admin):
    import requests

    demo, name = openstack_demo, _name(f"heat{topology}")
    before = _inventory(demo, name)
    seen: dict[str, set[str]] = {}
    try:
        started = time.monotonic()
        out, endpoint = _heat_up(deploy, demo, topology, name)
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


def test_autoscaler_drives_the_scaled_stack_by_backlog(
    deploy, openstack_bed, openstack_demo, tmp_path
):
    """``faafo autoscale --backend heat --stack``: a backlog grows the group, idleness shrinks it.

    The API runs here (no guest boots on the bed, so the stack's own APIs never
    serve); with no worker consuming, its queued tasks are a backlog that stays
    until the test deletes them.
    """
    import httpx
    from prometheus_client.parser import text_string_to_metric_families

    from support.processes import Service, free_port, start_api, wait_until

    demo, name = openstack_demo, _name("heatauto")
    before = _inventory(demo, name)
    seen: dict[str, set[str]] = {}
    api = scaler = None
    try:
        _heat_up(deploy, demo, "scaled", name)
        seen = _inventory(demo, name)
        stack_id = demo.orchestration.find_stack(name).id
        assert _outputs(demo, stack_id)["workers_size"] == 1
        api, _, url = start_api("api", tmp_path)
        tasks = [
            {"width": 64, "height": 64, "iterations": 64, "xa": -2, "xb": 2, "ya": -1, "yb": 1}
            for _ in range(30)
        ]
        created = httpx.post(f"{url}/v1/fractal", json=tasks, timeout=30)
        assert created.status_code == 201, created.text
        uuids = [record["uuid"] for record in created.json()["objects"]]

        metrics_port = free_port()
        scaler = Service(
            "autoscale",
            "faafo.client.cli",
            [
                "autoscale",
                "--backend",
                "heat",
                "--stack",
                name,
                "--endpoint-url",
                url,
                "--min",
                "1",
                "--max",
                "3",
                "--tasks-per-worker",
                "10",
                "--up-cooldown",
                "0",
                "--down-cooldown",
                "5",
                "--interval",
                "1",
                "--metrics-port",
                str(metrics_port),
            ],
            tmp_path,
            env=openstack_bed.env(),
        ).start()

        def size() -> int:
            assert scaler.alive(), scaler.tail()
            return int(_outputs(demo, stack_id)["workers_size"])

        wait_until(lambda: size() == 3, 240, interval=2, message="the group at 3 workers")
        seen = _merge(seen, _inventory(demo, name))
        time.sleep(3)  # a backlog of 30 asks for 3 (the --max): nothing more happens
        assert size() == 3
        for uuid_ in uuids:  # the backlog goes away: the pool must come back to --min
            assert httpx.delete(f"{url}/v1/fractal/{uuid_}", timeout=30).status_code == 204
        wait_until(lambda: size() == 1, 240, interval=2, message="the group back at 1 worker")

        def decisions() -> dict[str, float]:
            text = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10).text
            return {
                s.labels["direction"]: s.value
                for f in text_string_to_metric_families(text)
                for s in f.samples
                if s.name == "faafo_autoscale_decisions_total"
            }

        wait_until(lambda: decisions() == {"up": 1.0, "down": 1.0}, 30, message="two decisions")
        log = scaler.log_path.read_text()
        assert "autoscale: 1 -> 3 workers: backlog of 30 task(s)" in log, log
        assert re.search(r"autoscale: 3 -> 1 workers: backlog low for \d+s", log), log
    finally:
        if scaler is not None:
            scaler.stop()
        if api is not None:
            api.stop()
        deploy("down", "--name", name, "--heat", check=False)
    _none_left(demo, name, seen, before)
