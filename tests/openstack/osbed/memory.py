"""Peak memory of a bring-up, sampled while it runs.

Two figures: the proportional set size (PSS) of this process and everything it
started (pip, schema migrations, the services, their uwsgi workers), which
counts memory shared between forked workers once; and how much the machine's
used memory (total minus available) grew, which also sees MariaDB and RabbitMQ
doing the bed's work.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

GIB = 1024**3


def _parents() -> dict[int, int]:
    parents = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rpartition(")")[2].split()
        parents[int(entry.name)] = int(fields[1])
    return parents


def descendants(root: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for pid, parent in _parents().items():
        children.setdefault(parent, []).append(pid)
    found, todo = {root}, [root]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def pss_bytes(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


def machine_used_bytes() -> int:
    info = {}
    for line in Path("/proc/meminfo").read_text().splitlines():
        key, _, rest = line.partition(":")
        info[key] = int(rest.split()[0]) * 1024
    return info["MemTotal"] - info["MemAvailable"]


class PeakSampler:
    """Samples in a daemon thread until stopped; ``extra`` adds processes that
    are not our descendants (a reused bed's services)."""

    def __init__(self, interval: float = 0.5, extra=lambda: ()):
        self.interval = interval
        self.extra = extra
        self.peak_pss = 0
        self.baseline_used = machine_used_bytes()
        self.peak_used = self.baseline_used
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="osbed-memory", daemon=True)

    def __enter__(self) -> PeakSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.sample()
        self._stop.set()
        self._thread.join(timeout=5)

    def sample(self) -> None:
        pids = descendants(os.getpid()) | set(self.extra())
        self.peak_pss = max(self.peak_pss, sum(pss_bytes(pid) for pid in pids))
        self.peak_used = max(self.peak_used, machine_used_bytes())

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    @property
    def machine_growth(self) -> int:
        return self.peak_used - self.baseline_used

