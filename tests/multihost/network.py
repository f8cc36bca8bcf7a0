"""Hosts as Linux network namespaces joined by one bridge: a private LAN on one machine.

Each host gets its own network namespace (addresses, ports, firewall), its own
UTS namespace (so ``hostname`` names the host, as on a real machine) and its
own directory tree (``FAAFO_PREFIX``) for configuration, data, logs and pid
files. The bridge lives in a namespace of its own, so the test range exists
nowhere but inside the namespaces made here: the machine's own network never
sees it, and nothing leaves the machine.

Names carry the pid of the test run that made them (``fmh<pid>-api-1``; under
xdist, the pid of the controller, which outlives its workers): a run that died
without cleaning up is recognised and removed by the next one, while a run
still alive in parallel is left alone.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PREFIX = "fmh"
RUN_ROOT = Path("/run/faafo-multihost")
NETMASK = 24


def sh(argv: Sequence[str], timeout: float = 60, check: bool = True) -> str:
    """Run a setup command; its output goes into the error when it fails."""
    done = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout, check=False)
    if check and done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}: exit {done.returncode}\n{done.stdout}{done.stderr}")
    return done.stdout


def namespaces() -> list[str]:
    return [line.split()[0] for line in sh(["ip", "netns", "list"]).splitlines() if line.strip()]


def _alive(pid: int) -> bool:
    """Whether the process runs; a zombie (killed, not yet reaped) counts as gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def kill_namespace_processes(netns: str) -> None:
    """SIGKILL every process in the namespace: a host that loses power."""
    for _ in range(20):
        pids = [int(p) for p in sh(["ip", "netns", "pids", netns], check=False).split()]
        if not pids:
            return
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.1)


def remove_namespace(netns: str, uts: Path | None = None) -> None:
    kill_namespace_processes(netns)
    sh(["ip", "netns", "delete", netns], check=False)
    if uts is not None and uts.exists():
        subprocess.run(["umount", str(uts)], capture_output=True, check=False)
        uts.unlink(missing_ok=True)


def owner_pid() -> int:
    """The test run's pid: the xdist controller for its workers, else this process."""
    return os.getppid() if os.environ.get("PYTEST_XDIST_WORKER") else os.getpid()


def make_workdir() -> Path:
    """A directory for the hosts' files, named after this process for remove_stale().

    Not pytest's tmp_path: its parents are private to root, and PostgreSQL and
    RabbitMQ run as their own users.
    """
    workdir = Path(tempfile.mkdtemp(prefix=f"faafo-multihost-{owner_pid()}-"))
    workdir.chmod(0o755)
    return workdir


def remove_stale() -> None:
    """Remove what runs that died left behind (their owner's pid is gone)."""
    owners: set[int] = set()
    for name in namespaces():
        match = re.fullmatch(rf"{PREFIX}(\d+)-.+", name)
        if match and not _alive(int(match.group(1))):
            owners.add(int(match.group(1)))
            remove_namespace(name)
    if RUN_ROOT.is_dir():
        for entry in RUN_ROOT.iterdir():
            match = re.fullmatch(rf"{PREFIX}(\d+)(\.\w+)?", entry.name)
            if not match or (int(match.group(1)) not in owners and _alive(int(match.group(1)))):
                continue
            if entry.is_dir():
                for uts in entry.glob("*.uts"):
                    subprocess.run(["umount", str(uts)], capture_output=True, check=False)
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)
    for folder in Path(tempfile.gettempdir()).glob("faafo-multihost-*-*"):
        owner = folder.name.split("-")[2]
        if owner.isdigit() and not _alive(int(owner)):
            shutil.rmtree(folder, ignore_errors=True)


@dataclass
class Host:
    """One machine of the topology: namespace, host name, address and file tree."""

    name: str
    address: str
    netns: str
    uts: Path
    root: Path

    def command(self, argv: Sequence[str]) -> list[str]:
        return ["nsenter", f"--net=/run/netns/{self.netns}", f"--uts={self.uts}", "--", *argv]

    def run(
        self,
        argv: Sequence[str],
        env: Mapping[str, str] | None = None,
        timeout: float = 180,
        check: bool = True,
    ) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            self.command(argv), env={**os.environ, **(env or {})}, capture_output=True,
            text=True, timeout=timeout, check=False,
        )
        if check and done.returncode != 0:
            raise RuntimeError(
                f"on {self.name}: {' '.join(argv)}: exit {done.returncode}\n"
                f"{done.stdout[-3000:]}{done.stderr[-3000:]}"
            )
        return done

    def popen(self, argv: Sequence[str], env: Mapping[str, str] | None = None,
              **kwargs: Any) -> subprocess.Popen[str]:
        """A process on the host, left running (stdin/stdout as asked in kwargs)."""
        process: subprocess.Popen[str] = subprocess.Popen(
            self.command(argv), env={**os.environ, **(env or {})}, text=True, **kwargs
        )
        return process

    def pids(self) -> list[int]:
        return [int(p) for p in sh(["ip", "netns", "pids", self.netns], check=False).split()]

    def power_off(self) -> None:
        """Every process of the host dies at once (SIGKILL), as when a VM is destroyed."""
        kill_namespace_processes(self.netns)

    def path(self, relative: str) -> Path:
        return self.root / relative


class Network:
    """A switch (bridge) and the hosts plugged into it."""

    def __init__(self, workdir: Path, tag: str | None = None) -> None:
        self.tag = tag or f"{PREFIX}{owner_pid()}"
        self.workdir = workdir
        self.switch = f"{self.tag}-switch"
        self.uts_dir = RUN_ROOT / self.tag
        self.hosts: dict[str, Host] = {}

    def create(self) -> None:
        remove_stale()
        self.uts_dir.mkdir(parents=True, exist_ok=True)
        sh(["ip", "netns", "add", self.switch])
        sh(["ip", "-n", self.switch, "link", "set", "lo", "up"])
        sh(["ip", "-n", self.switch, "link", "add", "br0", "type", "bridge"])
        sh(["ip", "-n", self.switch, "link", "set", "br0", "up"])

    def attach_host(self, name: str, address: str) -> Host:
        """The host as another process of this run made it (nothing is created)."""
        host = Host(name, address, f"{self.tag}-{name}", self.uts_dir / f"{name}.uts",
                    self.workdir / name)
        self.hosts[name] = host
        return host

    def add_host(self, name: str, address: str) -> Host:
        """A new namespace with ``eth0`` cabled to the switch port named after the host."""
        host = self.attach_host(name, address)
        netns, uts, root = host.netns, host.uts, host.root
        root.mkdir(parents=True, exist_ok=True)
        root.chmod(0o755)  # database servers run as their own users and must get in
        sh(["ip", "netns", "add", netns])
        uts.touch()
        sh(["unshare", f"--uts={uts}", "hostname", name])
        sh(["ip", "link", "add", "eth0", "netns", netns, "type", "veth",
            "peer", "name", name, "netns", self.switch])
        sh(["ip", "-n", self.switch, "link", "set", name, "master", "br0"])
        sh(["ip", "-n", self.switch, "link", "set", name, "up"])
        sh(["ip", "-n", netns, "addr", "add", f"{address}/{NETMASK}", "dev", "eth0"])
        sh(["ip", "-n", netns, "link", "set", "eth0", "up"])
        sh(["ip", "-n", netns, "link", "set", "lo", "up"])
        return host

    def unplug(self, name: str) -> None:
        """Pull the host's cable: its packets go nowhere, its processes live on."""
        sh(["ip", "-n", self.switch, "link", "set", name, "down"])

    def plug(self, name: str) -> None:
        sh(["ip", "-n", self.switch, "link", "set", name, "up"])

    def remove_host(self, name: str) -> None:
        host = self.hosts.pop(name)
        remove_namespace(host.netns, host.uts)

    def destroy(self) -> None:
        """Remove every host, the switch and the UTS files; safe to call more than once."""
        for name in list(self.hosts):
            self.remove_host(name)
        if self.switch in namespaces():
            remove_namespace(self.switch)
        if self.uts_dir.exists():
            for uts in self.uts_dir.glob("*.uts"):
                subprocess.run(["umount", str(uts)], capture_output=True, check=False)
            shutil.rmtree(self.uts_dir, ignore_errors=True)
