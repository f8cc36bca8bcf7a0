"""Runs the whole app on one machine as separate processes: one API, N workers.

The same programs a split deployment runs (``faafo-api``, ``faafo-worker``),
started with URLs that point at each other, so the laptop exercises the very
code path of the cloud. A child that crashes is restarted with back-off; the
worker pool can be resized while running (the autoscaler uses that).

The API and the workers get environments of their own (``env`` and
``worker_env``), so a worker never holds what only the API needs (the client
token, the database URL).
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field

log = logging.getLogger(__name__)


def _die_with_parent() -> None:
    """Linux: children get SIGTERM if ``faafo up`` itself is killed (even by SIGKILL)."""
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


@dataclass
class Child:
    name: str
    argv: list[str]
    env: dict[str, str] = field(default_factory=lambda: dict(os.environ))
    process: subprocess.Popen | None = None
    restarts: int = 0
    next_start: float = 0.0

    def start(self) -> None:
        preexec = _die_with_parent if sys.platform.startswith("linux") else None
        self.process = subprocess.Popen(self.argv, env=self.env, preexec_fn=preexec)

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None


@dataclass
class Supervisor:
    api_argv: list[str] | None
    worker_argv: list[str]
    worker_name_prefix: str
    env: dict[str, str] = field(default_factory=lambda: dict(os.environ))
    # The workers' environment; None: the same as the API's.
    worker_env: dict[str, str] | None = None
    stop_timeout: float = 30.0
    api: Child | None = None
    workers: list[Child] = field(default_factory=list)
    retiring: list[tuple[Child, float]] = field(default_factory=list)
    # The autoscaler may resize from another thread than the one that checks.
    _lock: threading.RLock = field(default_factory=threading.RLock, repr=False)

    def start(self, workers: int) -> None:
        if self.api_argv:
            self.api = Child("api", self.api_argv, self.env)
            self.api.start()
        self.scale(workers)

    def scale(self, count: int) -> None:
        """Start or gracefully stop workers until ``count`` run."""
        with self._lock:
            self._scale(count)

    def _scale(self, count: int) -> None:
        while len(self.workers) < count:
            index = self._free_index()
            name = f"{self.worker_name_prefix}-w{index}"
            env = self.env if self.worker_env is None else self.worker_env
            child = Child(name, [*self.worker_argv, "--name", name], env)
            child.start()
            self.workers.append(child)
            log.info("started worker %s", name)
        while len(self.workers) > count:
            # Retire without waiting: it finishes (or gives back) its task, then exits.
            child = self.workers.pop()
            if child.alive():
                child.process.send_signal(signal.SIGTERM)  # type: ignore[union-attr]
            self.retiring.append((child, time.monotonic() + self.stop_timeout))
            log.info("retiring worker %s", child.name)

    def _free_index(self) -> int:
        used = {int(c.name.rsplit("-w", 1)[1]) for c in self.workers}
        used |= {int(c.name.rsplit("-w", 1)[1]) for c, _ in self.retiring}
        return next(i for i in range(1, len(used) + 2) if i not in used)

    @property
    def worker_count(self) -> int:
        return len(self.workers)

    def check(self) -> None:
        """Restart children that exited on their own, with back-off; reap retired ones."""
        with self._lock:
            self._check()

    def _check(self) -> None:
        now = time.monotonic()
        for child, deadline in list(self.retiring):
            if child.alive() and now > deadline:
                log.warning("%s did not stop in time; killing it", child.name)
                child.process.kill()  # type: ignore[union-attr]
            if not child.alive():
                self.retiring.remove((child, deadline))
                log.info("worker %s stopped", child.name)
        for child in [c for c in (self.api, *self.workers) if c is not None]:
            if child.alive() or now < child.next_start:
                continue
            code = child.process.returncode if child.process else None
            if child.next_start == 0.0 or child.process is not None:
                log.warning("%s exited with %s; restarting", child.name, code)
                child.restarts += 1
                child.next_start = now + min(30.0, 0.5 * 2 ** min(child.restarts, 6))
                child.process = None
                continue
            child.start()
            child.next_start = 0.0

    def _stop_children(self, children: list[Child]) -> None:
        for child in children:
            if child.alive():
                child.process.send_signal(signal.SIGTERM)  # type: ignore[union-attr]
        deadline = time.monotonic() + self.stop_timeout
        for child in children:
            if child.process is None:
                continue
            try:
                child.process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning("%s did not stop in time; killing it", child.name)
                child.process.kill()
                child.process.wait()

    def stop(self) -> None:
        """Workers first (they finish or give back their tasks), then the API."""
        with self._lock:
            self._stop_all()

    def _stop_all(self) -> None:
        self._stop_children(self.workers + [c for c, _ in self.retiring])
        self.workers.clear()
        self.retiring.clear()
        if self.api is not None:
            self._stop_children([self.api])
