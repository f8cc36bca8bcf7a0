"""deploy/'s files are what install.sh writes, and each is valid for its program.

install.sh carries the systemd units, the HAProxy configuration and the firewall
rules inside it so that it works alone as cloud-init user data; the files in
deploy/ are the same text rendered with the defaults (the firewall's with its
placeholders), for people who install by hand and for the multi-host harness,
which loads the firewall files. These tests keep them from drifting apart. Only
the test that applies a firewall needs root (it makes a network namespace).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest

from multihost import firewall
from multihost.topology import FIREWALL

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
INSTALL = DEPLOY / "install.sh"


def printed(what: str, *args: str) -> str:
    # Only PATH: FAAFO_* variables of the caller must not change the defaults.
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    return subprocess.run(["bash", str(INSTALL), "-P", what, *args], env=env,
                          capture_output=True, text=True, check=True, timeout=30).stdout


@pytest.mark.parametrize(("what", "path"), [
    ("unit-api", "systemd/faafo-api.service"),
    ("unit-worker", "systemd/faafo-worker.service"),
    ("haproxy", "haproxy/haproxy.cfg"),
    *[(f"firewall-{role}", f"firewall/{role}.rules") for role in firewall.ROLES],
    ("firewall-ipv6", "firewall/ipv6.rules"),
])
def test_deploy_file_is_what_install_writes(what: str, path: str) -> None:
    assert (DEPLOY / path).read_text() == printed(what), (
        f"deploy/{path} differs from `install.sh -P {what}`: regenerate it")


# The harness's groups as install.sh options: the same sources, the same ports.
GROUP_OPTIONS = [
    "-a", f"admin={FIREWALL['ADMIN_HOSTS']}", "-a", f"clients={FIREWALL['CLIENT_HOSTS']}",
    "-a", f"loadbalancer={FIREWALL['LOADBALANCER_HOSTS']}", "-a", f"api={FIREWALL['API_HOSTS']}",
    "-a", f"worker={FIREWALL['WORKER_HOSTS']}",
    "-a", f"prometheus={FIREWALL['PROMETHEUS_HOSTS']}",
]


@pytest.mark.parametrize("role", firewall.ROLES)
def test_harness_applies_what_install_applies(role: str) -> None:
    """The multi-host tests prove the rules a real host gets from ``install.sh -f``."""
    rendered = printed("firewall", "-f", role, *GROUP_OPTIONS)
    assert firewall.rules(role, FIREWALL).splitlines()[3:] == rendered.splitlines()[1:], (
        "same table after the header comments")
    assert "${" not in rendered


def accepted(table: str) -> list[str]:
    return [line for line in table.splitlines() if line.endswith("-j ACCEPT")]


def test_firewall_is_default_deny_with_loopback_replies_and_ssh() -> None:
    for role in firewall.ROLES:
        table = firewall.rules(role, FIREWALL)
        for line in (":INPUT DROP [0:0]", ":FORWARD DROP [0:0]", "-A INPUT -i lo -j ACCEPT",
                     "-A INPUT -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT",
                     f"-A INPUT -p tcp -s {FIREWALL['ADMIN_HOSTS']} --dport 22 -j ACCEPT"):
            assert line in table.splitlines(), (role, line)
        # After loopback, replies and ping, every accepted port names its sources.
        for line in accepted(table)[3:]:
            assert " -s " in line and " --dport " in line, (role, line)
    services = firewall.rules("services", FIREWALL)
    for port in (4369, 25672, 15672):
        assert f"--dport {port} " not in services, f"RabbitMQ's {port} must stay closed"
    assert accepted(services)[3:] == [
        f"-A INPUT -p tcp -s {FIREWALL['ADMIN_HOSTS']} --dport 22 -j ACCEPT",
        f"-A INPUT -p tcp -s {FIREWALL['API_HOSTS']} --dport 5432 -j ACCEPT",
        f"-A INPUT -p tcp -s {FIREWALL['API_HOSTS']} --dport 3306 -j ACCEPT",
        f"-A INPUT -p tcp -s {FIREWALL['API_HOSTS']} --dport 5672 -j ACCEPT",
        f"-A INPUT -p tcp -s {FIREWALL['WORKER_HOSTS']} --dport 5672 -j ACCEPT",
        f"-A INPUT -p tcp -s {FIREWALL['PROMETHEUS_HOSTS']} --dport 9101 -j ACCEPT",
    ]


def test_firewall_closes_what_no_group_was_given_for_and_follows_the_ports() -> None:
    table = printed("firewall", "-f", "worker", "-f", "api", "-a", "loadbalancer=10.0.0.4",
                    "-o", "worker.metrics_port=9200", "-o", "api.bind_port=8080")
    assert accepted(table)[3:] == [
        "-A INPUT -p tcp -s 0.0.0.0/0 --dport 22 -j ACCEPT",
        "-A INPUT -p tcp -s 10.0.0.4 --dport 8080 -j ACCEPT",
    ], table
    with_prometheus = printed("firewall", "-f", "worker", "-a", "prometheus=10.0.0.9",
                              "-a", "prometheus=10.0.1.0/24", "-a", "admin=192.0.2.1")
    assert accepted(with_prometheus)[3:] == [
        "-A INPUT -p tcp -s 192.0.2.1 --dport 22 -j ACCEPT",
        "-A INPUT -p tcp -s 10.0.0.9,10.0.1.0/24 --dport 9100 -j ACCEPT",
    ], with_prometheus
    off = printed("firewall", "-f", "worker", "-a", "prometheus=10.0.0.9",
                  "-o", "worker.metrics_port=0")
    assert "--dport 9100" not in off and len(accepted(off)) == 4


@pytest.mark.parametrize(("args", "message"), [
    (["-a", "api=10.0.0.6;reboot"], "IPv4 addresses or CIDR blocks"),
    (["-a", "api=10.0.0.6,"], "IPv4 addresses or CIDR blocks"),
    (["-a", "api"], "GROUP=SOURCES"),
    (["-a", "database=10.0.0.6"], "unknown group"),
    (["-f", "database"], "unknown firewall role"),
    (["-P", "firewall"], "-f ROLE"),
    (["-P", "firewall", "-f", "worker", "-a", "prometheus=10.0.0.9",
      "-o", "worker.metrics_port=9100 -j DROP"], "not a number"),
])
def test_firewall_options_refuse_bad_values(args: list[str], message: str) -> None:
    done = subprocess.run(["bash", str(INSTALL), *args], env={"PATH": os.environ["PATH"]},
                          capture_output=True, text=True, timeout=30, check=False)
    assert done.returncode != 0
    assert done.stderr.startswith("install.sh: error: ") and message in done.stderr, done.stderr


def test_install_applies_the_firewall(tmp_path: Path) -> None:
    """``install.sh -f`` loads its tables (IPv4 and IPv6) into a namespace of its own."""
    if os.geteuid() != 0 or shutil.which("iptables-restore") is None:
        pytest.skip("applying a firewall needs root and iptables (in a network namespace)")
    netns = f"faafo-fw-{uuid.uuid4().hex[:8]}"
    subprocess.run(["ip", "netns", "add", netns], check=True, timeout=30)
    try:
        env = {"PATH": os.environ["PATH"], "FAAFO_PREFIX": str(tmp_path), "FAAFO_NO_APT": "1"}
        done = subprocess.run(
            ["ip", "netns", "exec", netns, "bash", str(INSTALL), "-f", "services",
             "-a", "api=10.0.0.6,10.0.0.8", "-a", "worker=10.0.0.32/28"],
            env=env, capture_output=True, text=True, timeout=60, check=False)
        assert done.returncode == 0, done.stderr

        def saved(program: str) -> str:
            return subprocess.run(["ip", "netns", "exec", netns, program], capture_output=True,
                                  text=True, check=True, timeout=30).stdout

        v4 = saved("iptables-save")
        assert ":INPUT DROP" in v4
        for source, port in (("10.0.0.6/32", 5432), ("10.0.0.8/32", 5432),
                             ("10.0.0.32/28", 5672)):
            assert f"-A INPUT -s {source} -p tcp -m tcp --dport {port} -j ACCEPT" in v4, v4
        assert "--dport 9101" not in v4, "no -a prometheus: closed"
        assert (tmp_path / "etc/faafo/firewall.rules").read_text() == printed(
            "firewall", "-f", "services", "-a", "api=10.0.0.6,10.0.0.8",
            "-a", "worker=10.0.0.32/28")
        if shutil.which("ip6tables-save"):
            v6 = saved("ip6tables-save")
            assert ":INPUT DROP" in v6 and "-A INPUT -i lo -j ACCEPT" in v6, v6
    finally:
        subprocess.run(["ip", "netns", "delete", netns], capture_output=True, timeout=30)


def test_units_restart_on_failure_and_stop_gracefully() -> None:
    for unit in ("faafo-api", "faafo-worker"):
        text = (DEPLOY / "systemd" / f"{unit}.service").read_text()
        for line in ("Restart=on-failure", "KillSignal=SIGTERM", "KillMode=mixed"):
            assert line in text, f"{unit}: {line}"
        assert "TimeoutStopSec=" in text


def test_haproxy_config_is_valid() -> None:
    if shutil.which("haproxy") is None:
        pytest.skip("haproxy is not installed")
    env = {**os.environ, "FAAFO_API_1": "192.0.2.6:80", "FAAFO_API_2": "192.0.2.7:80"}
    done = subprocess.run(["haproxy", "-c", "-f", str(DEPLOY / "haproxy" / "haproxy.cfg")],
                          env=env, capture_output=True, text=True, timeout=30, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    text = (DEPLOY / "haproxy" / "haproxy.cfg").read_text()
    for line in ("option httpchk GET /readyz", "balance roundrobin", "retries 3",
                 "option redispatch", "option http-buffer-request"):
        assert line in text


def test_install_script_is_shellcheck_clean() -> None:
    if shutil.which("shellcheck") is None:
        pytest.skip("shellcheck is not installed")
    done = subprocess.run(["shellcheck", str(INSTALL)], capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.returncode == 0, done.stdout


def test_install_refuses_guest_and_unknown_roles() -> None:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "FAAFO_NO_APT": "1"}
    for args, message in (
        (["-i", "messaging", "-m", "amqp://guest:guest@localhost:5672//"], "not guest"),
        (["-r", "cook"], "unknown role"),
        (["-i", "database", "-d", "sqlite:////tmp/x"], "needs -d"),
    ):
        done = subprocess.run(["bash", str(INSTALL), *args], env=env, capture_output=True,
                              text=True, timeout=30, check=False)
        assert done.returncode != 0 and done.stderr, (args, done.stderr)
        if message != "needs -d":
            assert message in done.stderr, (args, done.stderr)
