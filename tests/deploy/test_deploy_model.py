"""Fast checks of faafo deploy without a cloud: the model, the user data, the templates.

The security groups are compared with the seed's table written out here by
hand (faafo-v1.md, "Topologies"), not with the code's own constants, so that a
change to the model has to be a change to this table too.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest
import yaml

from faafo.deploy.roles import roles
from faafo.deploy.state import State, load
from faafo.deploy.topology import Rule, groups, plan
from faafo.deploy.userdata import install_script_path, render

REPO = Path(__file__).resolve().parents[2]
HEAT = REPO / "deploy" / "heat"

# (group, port, remote group or None for anywhere)
SEED = {
    "aio": {("aio", 22, None), ("aio", 80, None)},
    "split": {
        ("control", 22, None),
        ("control", 80, None),
        ("control", 5672, "worker"),
        ("worker", 22, None),
    },
    "scaled": {
        ("services", 22, None),
        ("services", 3306, "api"),
        ("services", 5672, "worker"),
        ("services", 5672, "api"),
        ("api", 22, None),
        ("api", 80, None),
        ("worker", 22, None),
        ("lb", 22, None),
        ("lb", 80, None),
    },
}
#: Scaled with an Octavia load balancer: the seed's groups, no ``lb`` group.
SEED_OCTAVIA = {rule for rule in SEED["scaled"] if rule[0] != "lb"}


def _flat(topology: str, lb: str = "haproxy") -> set[tuple[str, int, str | None]]:
    return {(g.name, r.port, r.remote_group) for g in groups(topology, lb) for r in g.rules}


@pytest.mark.parametrize("topology", sorted(SEED))
def test_security_groups_are_the_seeds(topology: str) -> None:
    assert _flat(topology) == SEED[topology]


def test_scaled_with_octavia_has_no_lb_server_or_group() -> None:
    assert _flat("scaled", "octavia") == SEED_OCTAVIA
    p = plan("scaled", apis=3, workers=2, lb="octavia")
    assert [s.name for s in p.servers] == [
        "services",
        "api-1",
        "api-2",
        "api-3",
        "worker-1",
        "worker-2",
    ]
    assert not any(s.public for s in p.servers)  # the floating IP is on the VIP
    with pytest.raises(ValueError, match="unknown load balancer"):
        plan("scaled", lb="nginx")


def test_scaled_plan_servers_and_public_addresses() -> None:
    p = plan("scaled", apis=2, workers=3)
    assert [s.name for s in p.servers] == [
        "services",
        "api-1",
        "api-2",
        "worker-1",
        "worker-2",
        "worker-3",
        "lb",
    ]
    assert [s.name for s in p.servers if s.public] == ["lb"]
    assert all(not s.public for s in p.servers if s.kind == "worker")


def _state(topology: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> State:
    monkeypatch.setenv("FAAFO_DEPLOY_STATE", str(tmp_path / "state"))
    return State(name="t", topology=topology, workers=2)


ADDRESSES = {
    "services": "10.0.0.2",
    "api-1": "10.0.0.11",
    "api-2": "10.0.0.12",
    "controller": "10.0.0.5",
    "lb": "10.0.0.9",
    "app": "10.0.0.3",
    "worker-1": "10.0.0.21",
    "worker-2": "10.0.0.22",
}


def _decode(user_data: str) -> dict:
    assert user_data.startswith("#cloud-config\n")
    return yaml.safe_load(user_data)


@pytest.mark.parametrize("topology", ["aio", "split", "scaled"])
def test_user_data_embeds_install_sh_and_keeps_secrets_off_the_command_line(
    topology: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    state = _state(topology, tmp_path, monkeypatch)
    p = plan(topology, 2, 2)
    by_name = roles(p, ADDRESSES, state)
    script = install_script_path().read_text()
    secrets = [
        state.secrets.broker_password,
        state.secrets.database_password,
        state.secrets.client_token,
        state.secrets.worker_token,
    ]
    for server in p.servers:
        doc = _decode(render(by_name[server.name]))
        embedded, env = doc["write_files"]
        assert base64.b64decode(embedded["content"]).decode() == script  # the same script
        assert env["permissions"] == "0600"
        command = json.dumps(doc["runcmd"])
        assert not any(s in command for s in secrets)
        for flag in server.install:
            assert f"-i {flag}" in command
        for role in server.roles:
            assert f"-r {role}" in command
        if "FAAFO_TRANSPORT_URL" in env["content"]:
            assert "amqp://faafo:" in env["content"] and "guest" not in env["content"]


def test_scaled_urls_point_workers_at_both_apis(tmp_path: Path, monkeypatch) -> None:
    state = _state("scaled", tmp_path, monkeypatch)
    r = roles(plan("scaled", 2, 1), ADDRESSES, state)
    assert r["worker-1"].env["FAAFO_ENDPOINT_URL"] == "http://10.0.0.11:80,http://10.0.0.12:80"
    assert "@10.0.0.2:5672/faafo" in r["worker-1"].env["FAAFO_TRANSPORT_URL"]
    assert r["api-1"].env["FAAFO_DATABASE_URL"].startswith("mysql+pymysql://faafo:")
    assert "FAAFO_DATABASE_URL" not in r["worker-1"].env
    assert r["lb"].backends == "10.0.0.11:80,10.0.0.12:80"


def test_scaled_workers_deliver_through_the_octavia_vip(tmp_path: Path, monkeypatch) -> None:
    state = _state("scaled", tmp_path, monkeypatch)
    p = plan("scaled", 2, 2, lb="octavia")
    r = roles(p, ADDRESSES, state, lb_address="10.0.0.99")
    for worker in ("worker-1", "worker-2"):
        assert r[worker].env["FAAFO_ENDPOINT_URL"] == "http://10.0.0.99:80"
    assert "lb" not in r


class _Catalog:
    """Stands in for a connection's catalog: only ``has_service`` is asked."""

    def __init__(self, *services: str) -> None:
        self.services = set(services)

    def has_service(self, name: str) -> bool:
        return name in self.services


def test_lb_choice_resolves_against_the_catalog() -> None:
    from faafo.deploy.errors import DeployError
    from faafo.deploy.octavia import resolve

    with_octavia, without = _Catalog("compute", "load-balancer"), _Catalog("compute")
    assert resolve(with_octavia, "auto") == "octavia"
    assert resolve(without, "auto") == "haproxy"
    assert resolve(with_octavia, "haproxy") == "haproxy"
    assert resolve(with_octavia, "octavia") == "octavia"
    with pytest.raises(DeployError, match="no load-balancer service"):
        resolve(without, "octavia")
    with pytest.raises(DeployError, match="--lb must be one of"):
        resolve(with_octavia, "f5")


def test_lb_choice_is_kept_in_the_state_file(tmp_path: Path, monkeypatch) -> None:
    state = _state("scaled", tmp_path, monkeypatch)
    state.lb = "haproxy"
    state.save()
    again = load("t", None)
    assert again is not None and again.lb == "haproxy"
    assert State(name="fresh").lb == "auto"


def test_user_data_passes_cloud_init_schema(tmp_path: Path, monkeypatch) -> None:
    if shutil.which("cloud-init") is None:
        if os.environ.get("FAAFO_REQUIRE_SERVERS") == "1":
            pytest.fail("cloud-init is not installed (apt-get install cloud-init)")
        pytest.skip("cloud-init is not installed (apt-get install cloud-init)")
    state = _state("scaled", tmp_path, monkeypatch)
    p = plan("scaled", 2, 1)
    for name, role in roles(p, ADDRESSES, state).items():
        path = tmp_path / f"{name}.cfg"
        path.write_text(render(role))
        result = subprocess.run(
            ["cloud-init", "schema", "-c", str(path)], capture_output=True, text=True
        )
        assert result.returncode == 0, result.stdout + result.stderr
        assert "Valid cloud-config" in result.stdout


def test_state_file_is_private_and_secrets_hidden(tmp_path: Path, monkeypatch) -> None:
    state = _state("aio", tmp_path, monkeypatch)
    state.save()
    assert stat.S_IMODE(state.path.stat().st_mode) == 0o600
    assert state.secrets.broker_password not in repr(state)
    again = load("t", None)
    assert again is not None and again.secrets.broker_password == state.secrets.broker_password


# ---------------------------------------------------------------- Heat templates


def _template(topology: str) -> dict:
    return yaml.safe_load((HEAT / f"{topology}.yaml").read_text())


def _template_rules(template: dict) -> set[tuple[str, int, str | None]]:
    """The template's security group rules, named like the model's groups."""
    short = {
        "group": "aio",
        "control_group": "control",
        "worker_group": "worker",
        "api_group": "api",
        "services_group": "services",
        "lb_group": "lb",
    }
    out = set()
    for name, res in template["resources"].items():
        if res["type"] != "OS::Neutron::SecurityGroup":
            continue
        for rule in res["properties"]["rules"]:
            assert rule["protocol"] == "tcp"
            assert rule["port_range_min"] == rule["port_range_max"]
            remote = rule.get("remote_group_id")
            out.add(
                (
                    short[name],
                    rule["port_range_min"],
                    short[remote["get_resource"]] if remote else None,
                )
            )
            if remote is None:
                assert rule["remote_ip_prefix"] == "0.0.0.0/0"
    return out


@pytest.mark.parametrize("topology", ["aio", "split", "scaled"])
def test_heat_templates_parse_and_match_the_model(topology: str) -> None:
    t = _template(topology)
    assert str(t["heat_template_version"]) == "2021-04-16"
    params = set(t["parameters"])
    assert {"image", "flavor", "key_name", "network"} <= params
    if topology != "aio":
        assert "worker_count" in params
    types = [r["type"] for r in t["resources"].values()]
    assert "OS::Heat::WaitConditionHandle" in types and "OS::Heat::WaitCondition" in types
    assert "app_url" in t["outputs"]
    assert _template_rules(t) == SEED[topology]


def test_scaled_template_autoscales_with_signal_urls() -> None:
    t = _template("scaled")
    res = t["resources"]
    assert res["workers"]["type"] == "OS::Heat::AutoScalingGroup"
    adjust = sorted(
        r["properties"]["scaling_adjustment"]
        for r in res.values()
        if r["type"] == "OS::Heat::ScalingPolicy"
    )
    assert adjust == [-1, 1]
    assert {"scale_up_url", "scale_down_url"} <= set(t["outputs"])


@pytest.mark.parametrize("topology", ["aio", "split", "scaled"])
def test_heat_templates_embed_install_sh_itself(topology: str) -> None:
    from openstack.orchestration.util import template_utils

    files, _template_body = template_utils.get_template_contents(
        template_file=str(HEAT / f"{topology}.yaml")
    )
    [(url, content)] = files.items()
    assert url.endswith("/deploy/install.sh")
    assert content == install_script_path().read_text()


def test_rule_default_is_from_anywhere() -> None:
    assert Rule(22).remote_group is None


def test_the_wheel_carries_install_sh_and_the_heat_templates(tmp_path: Path) -> None:
    """``pip install faafo`` alone (no checkout) can deploy, with this very script."""
    import sys
    import zipfile

    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(tmp_path), str(REPO)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    [wheel] = tmp_path.glob("faafo-*.whl")
    unpacked = tmp_path / "site"
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(unpacked)
    code = (
        "import faafo, faafo.deploy.heat as h, faafo.deploy.userdata as u\n"
        "from openstack.orchestration.util import template_utils as t\n"
        "files, _ = t.get_template_contents(template_file=str(h.template_path('scaled')))\n"
        "print(faafo.__file__); print(u.install_script_path()); print(*files)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, "PYTHONPATH": str(unpacked)},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    )
    package, script, files = result.stdout.splitlines()
    assert package.startswith(str(unpacked)), "the unpacked wheel was imported"
    assert Path(script).read_bytes() == (REPO / "deploy" / "install.sh").read_bytes()
    assert files == f"file://{script}", "the template's get_file resolves inside the wheel"
    for template in HEAT.glob("*.yaml"):
        packaged = unpacked / "faafo" / "deploy" / "assets" / "heat" / template.name
        assert packaged.read_bytes() == template.read_bytes()


def test_up_heat_refuses_an_octavia_choice_saved_by_an_earlier_up(
    tmp_path: Path, monkeypatch
) -> None:
    """``up --heat`` checks the combined choice (flag plus state file), not only the flag:
    a deployment saved with ``--lb octavia`` cannot quietly become a Heat one with HAProxy."""
    import argparse

    from faafo.deploy import cli
    from faafo.deploy.errors import DeployError

    state = _state("scaled", tmp_path, monkeypatch)
    state.lb = "octavia"
    state.save()

    def args(**given: object) -> argparse.Namespace:
        flags = {key: None for key in cli.DEFAULTS}
        flags.update(name="t", os_cloud=None, heat=True, timeout=1.0, **given)
        return argparse.Namespace(**flags)

    with pytest.raises(DeployError, match=r"drop --lb octavia .*pass --lb haproxy"):
        cli._up(None, args(), console=None)
    with pytest.raises(DeployError, match=r"drop --lb octavia$"):
        cli._up(None, args(lb="octavia"), console=None)
    again = load("t", None)
    assert again is not None and (again.heat, again.lb) == (False, "octavia")  # not saved
