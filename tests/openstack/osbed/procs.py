"""Starting and stopping the bed's processes.

Each service runs in its own session (so its uwsgi workers or oslo.service
children go with it), logs stdout and stderr to ``logs/NAME.log`` and leaves a
pid file holding its pid and its start time: a pid only counts as the service
while both match, so a recycled pid never makes ``down`` kill something else.
Processes also carry ``OSBED_STATE=<state dir>`` in their environment, which
finds strays whose pid file is gone (setproctitle, used by oslo.service and
uwsgi, can overwrite that area, so the mark is only a second net).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from .errors import BedError
from .paths import Layout

MARK = "OSBED_STATE"


@dataclass
class Service:
    """One long-running process of the bed."""

    name: str
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    #: Set for API services: up when it answers HTTP here.
    url: str | None = None

    def log(self, layout: Layout) -> Path:
        return layout.log(self.name)


def _proc_environ(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return b""


def _stat(pid: int) -> list[str] | None:
    """Fields of /proc/PID/stat after the command name (state is [0], the
    session id [3], the start time [19])."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return None


def _alive(fields: list[str] | None) -> bool:
    return fields is not None and fields[0] not in ("Z", "X")


def start_time(pid: int) -> str | None:
    fields = _stat(pid)
    return fields[19] if fields else None


def is_marked(pid: int, layout: Layout) -> bool:
    """Alive and carrying this bed's mark in its environment."""
    mark = f"{MARK}={layout.state}".encode()
    return _alive(_stat(pid)) and mark in _proc_environ(pid).split(b"\0")


def read_pid(layout: Layout, name: str) -> tuple[int, str] | None:
    try:
        pid, started = layout.pid_file(name).read_text().split()
        return int(pid), started
    except (OSError, ValueError):
        return None


def running_pid(layout: Layout, name: str) -> int | None:
    """The service's pid while that very process is alive."""
    recorded = read_pid(layout, name)
    if recorded is None:
        return None
    pid, started = recorded
    fields = _stat(pid)
    return pid if _alive(fields) and fields[19] == started else None


def base_env(layout: Layout) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("OS_", "VIRTUAL_ENV", "PYTHON"))}
    env.update({
        MARK: str(layout.state),
        "PATH": f"{layout.bin}{os.pathsep}{env.get('PATH', '/usr/bin:/bin')}",
        "PYTHONUNBUFFERED": "1",
        "PYTHONDONTWRITEBYTECODE": "1",
    })
    return env


def start(service: Service, layout: Layout) -> int:
    layout.logs.mkdir(parents=True, exist_ok=True)
    layout.run.mkdir(parents=True, exist_ok=True)
    with open(service.log(layout), "ab") as log:
        process = subprocess.Popen(
            service.argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env={**base_env(layout), **service.env}, cwd=layout.state, start_new_session=True,
        )
    layout.pid_file(service.name).write_text(f"{process.pid} {start_time(process.pid)}\n")
    return process.pid


def answers_http(url: str, timeout: float = 3.0) -> bool:
    """Any HTTP answer counts (a 300 or 401 from an API root means it is up)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout):
            return True
    except urllib.error.HTTPError:
        return True
    except (OSError, ValueError):
        return False


def wait_ready(services: Iterable[Service], layout: Layout, timeout: float) -> None:
    """Until every API answers; a process that dies meanwhile fails at once,
    named, with its log."""
    pending = {service.name: service for service in services}
    deadline = time.monotonic() + timeout
    while pending:
        for name, service in list(pending.items()):
            if running_pid(layout, name) is None:
                raise BedError(name, "the process exited during start-up", service.log(layout))
            if service.url is None or answers_http(service.url):
                del pending[name]
        if not pending:
            return
        if time.monotonic() > deadline:
            name, service = next(iter(pending.items()))
            raise BedError(name, f"did not answer at {service.url} within {timeout:.0f} s",
                           service.log(layout))
        time.sleep(0.5)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def stop_groups(pgids: Iterable[int], grace: float = 15.0) -> None:
    """SIGTERM the process groups all at once (their graceful shutdowns take
    3 to 14 s each, so one after the other would take a minute), then SIGKILL
    whatever is left after ``grace``."""
    pending = set()
    for pgid in pgids:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGTERM)
            pending.add(pgid)
    deadline = time.monotonic() + grace
    while pending and time.monotonic() < deadline:
        for pgid in list(pending):
            _reap(pgid)
            if not _group_alive(pgid):
                pending.discard(pgid)
        time.sleep(0.2)
    for pgid in pending:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGKILL)
        _reap(pgid)


def _reap(pid: int) -> None:
    """Collect the exit status when the service is our own child (pytest or
    bed.py started it), so it does not linger as a zombie."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def stray_processes(layout: Layout, sessions: set[int]) -> list[int]:
    """Live processes of this bed that no running leader accounts for: in one
    of the bed's sessions (a worker whose leader died) or carrying its mark."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        pid = int(entry.name)
        fields = _stat(pid)
        if _alive(fields) and (int(fields[3]) in sessions or is_marked(pid, layout)):
            found.append(pid)
    return found


def stop_all(layout: Layout, names: Iterable[str]) -> None:
    """Stop the named services (leaders and their groups), then any stray
    process of this bed."""
    names = list(names)
    sessions, leaders = set(), []
    for name in names:
        recorded = read_pid(layout, name)
        if recorded is not None:
            sessions.add(recorded[0])
        pid = running_pid(layout, name)
        if pid is not None:
            leaders.append(pid)  # a session leader: its pid is its group's id
    stop_groups(leaders)
    for name in names:
        layout.pid_file(name).unlink(missing_ok=True)
    strays = stray_processes(layout, sessions)
    groups = {_pgid_of(pid) for pid in strays} - {None, os.getpgid(0)}
    stop_groups([pgid for pgid in groups if pgid is not None], grace=5.0)
    for pid in strays:
        if _pgid_of(pid) == os.getpgid(0):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def _pgid_of(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except ProcessLookupError:
        return None
