"""Fixtures: one Figure 18 topology per test run, put back to its baseline around each test.

Building it needs root (namespaces, veth, iptables) and the servers' programs
(RabbitMQ, PostgreSQL, HAProxy, iptables). Without them the tests skip with the
reason, unless ``FAAFO_REQUIRE_SERVERS=1`` (CI), where they fail.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from multihost.network import PREFIX, RUN_ROOT, make_workdir, owner_pid
from multihost.topology import Topology

REQUIRED = os.environ.get("FAAFO_REQUIRE_SERVERS") == "1"
PROGRAMS = ["ip", "nsenter", "unshare", "iptables-restore", "haproxy", "rabbitmq-server",
            "rabbitmqctl", "runuser", "psql"]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "multihost: needs root: hosts in network namespaces")


def missing() -> str | None:
    if os.geteuid() != 0:
        return "the multi-host tests need root (network namespaces, veth links, iptables)"
    absent = [p for p in PROGRAMS if shutil.which(p) is None]
    if absent:
        return "the multi-host tests need " + ", ".join(absent)
    if not Path("/usr/lib/postgresql").is_dir():
        return "the multi-host tests need PostgreSQL's server programs (/usr/lib/postgresql)"
    return None


@contextmanager
def locked(path: Path) -> Iterator[None]:
    """An exclusive lock shared by the processes of this test run (xdist workers)."""
    with open(path, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _users(path: Path) -> list[int]:
    try:
        pids = json.loads(path.read_text())
    except (OSError, ValueError):
        return []
    return [pid for pid in pids if Path(f"/proc/{pid}").exists()]


@pytest.fixture(scope="session")
def topology() -> Iterator[Topology]:
    """One topology per test run, shared by its xdist workers.

    The first process to need it builds it and leaves its description in a state
    file; the others attach to it. The last one to finish takes it down. Tests
    take turns through the ``cluster`` fixture's lock, since they break hosts.
    """
    reason = missing()
    if reason:
        if REQUIRED:
            pytest.fail(reason + " (FAAFO_REQUIRE_SERVERS=1)")
        pytest.skip(reason)
    RUN_ROOT.mkdir(parents=True, exist_ok=True)
    tag = f"{PREFIX}{owner_pid()}"
    state_file, users_file = RUN_ROOT / f"{tag}.json", RUN_ROOT / f"{tag}.users"
    with locked(RUN_ROOT / f"{tag}.lock"):
        if state_file.exists():
            built = Topology.attach(json.loads(state_file.read_text()))
        else:
            built = Topology(make_workdir(), tag)
            try:
                built.build()
            except BaseException:
                built.destroy()
                shutil.rmtree(built.workdir, ignore_errors=True)
                raise
            state_file.write_text(json.dumps(built.state()))
        users_file.write_text(json.dumps([*_users(users_file), os.getpid()]))
    try:
        yield built
    finally:
        with locked(RUN_ROOT / f"{tag}.lock"):
            built.close_agents()
            others = [pid for pid in _users(users_file) if pid != os.getpid()]
            users_file.write_text(json.dumps(others))
            if not others:
                built.destroy()
                # Nobody else of this run is left to take these locks.
                for leftover in (state_file, users_file, RUN_ROOT / f"{tag}.tests",
                                 RUN_ROOT / f"{tag}.lock"):
                    leftover.unlink(missing_ok=True)
                if os.environ.get("FAAFO_KEEP_MULTIHOST_LOGS"):
                    print(f"multihost: logs kept in {built.workdir}")
                else:
                    shutil.rmtree(built.workdir, ignore_errors=True)


@pytest.fixture
def cluster(topology: Topology) -> Iterator[Topology]:
    """The topology at its baseline, to this test alone; what it broke is repaired after it."""
    with locked(RUN_ROOT / f"{topology.network.tag}.tests"):
        topology.heal()
        yield topology
        topology.heal()
