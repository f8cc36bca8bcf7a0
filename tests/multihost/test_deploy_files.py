"""deploy/'s files are what install.sh writes, and each is valid for its program.

install.sh carries the systemd units and the HAProxy configuration inside it so
that it works alone as cloud-init user data; the files in deploy/ are the same
text rendered with the defaults, for people who install by hand. These tests
keep the two from drifting apart. No root needed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
INSTALL = DEPLOY / "install.sh"


def printed(what: str) -> str:
    # Only PATH: FAAFO_* variables of the caller must not change the defaults.
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    return subprocess.run(["bash", str(INSTALL), "-P", what], env=env, capture_output=True,
                          text=True, check=True, timeout=30).stdout


@pytest.mark.parametrize(("what", "path"), [
    ("unit-api", "systemd/faafo-api.service"),
    ("unit-worker", "systemd/faafo-worker.service"),
    ("haproxy", "haproxy/haproxy.cfg"),
])
def test_deploy_file_is_what_install_writes(what: str, path: str) -> None:
    assert (DEPLOY / path).read_text() == printed(what), (
        f"deploy/{path} differs from `install.sh -P {what}`: regenerate it")


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
                 "option redispatch"):
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
