"""Doorbells: wake idle consumers of the embedded queue when a message arrives.

Polling an SQLite file every 20 ms costs each idle worker about 1 % of a
core just in wake-ups, and still adds ~10 ms of latency. Instead, every
consuming connection owns a named pipe ``<owners dir>/<owner id>.wake``
and, when idle, blocks in ``select()`` on it. Whoever makes a message ready
(publish, requeue, reclaim) writes one byte to every doorbell *after* its
commit. Pipes are level-triggered, so a ring that arrives between a
consumer's last poll and its wait is not lost: the wait returns at once.

A missed ring (a consumer that appeared a moment after the publisher listed
the directory) only delays delivery until the consumer's next periodic
check, never loses a message: the queue file stays the only truth.

Where named pipes are not available (Windows, some network file systems)
:func:`open_doorbell` returns None and the transport polls instead.
"""

from __future__ import annotations

import contextlib
import os
import select
import stat
import threading
import weakref
from pathlib import Path

#: File name suffix of a doorbell.
WAKE_SUFFIX = ".wake"

_OPEN: weakref.WeakSet[Doorbell] = weakref.WeakSet()


class Doorbell:
    """The read end of a consumer's wake-up pipe (and a write end of its own).

    Holding a write end ourselves keeps the pipe from reporting end-of-file
    (which would make ``select()`` spin) when no publisher has it open.
    """

    def __init__(self, directory: Path, owner_id: str) -> None:
        self.path = directory / (owner_id + WAKE_SUFFIX)
        directory.mkdir(parents=True, exist_ok=True)
        os.mkfifo(self.path, 0o600)
        try:
            self._read_fd = os.open(self.path, os.O_RDONLY | os.O_NONBLOCK)
            self._write_fd = os.open(self.path, os.O_WRONLY | os.O_NONBLOCK)
        except OSError:
            with contextlib.suppress(OSError):
                self.path.unlink()
            raise
        _OPEN.add(self)

    def wait(self, timeout: float) -> bool:
        """Block until rung or *timeout* seconds passed; return whether rung."""
        if self._read_fd < 0:
            return False
        ready, _, _ = select.select([self._read_fd], [], [], max(0.0, timeout))
        if not ready:
            return False
        self._drain()
        return True

    def _drain(self) -> None:
        with contextlib.suppress(BlockingIOError, InterruptedError):
            while os.read(self._read_fd, 4096):
                pass

    def ring(self) -> None:
        """Wake our own waiter (e.g. an ack from another thread freed a prefetch slot)."""
        with contextlib.suppress(OSError):
            os.write(self._write_fd, b"\1")

    def close(self) -> None:
        """Remove the pipe and close both ends (idempotent)."""
        _OPEN.discard(self)
        with contextlib.suppress(OSError):
            self.path.unlink()
        for name in ("_read_fd", "_write_fd"):
            fd = getattr(self, name)
            setattr(self, name, -1)
            if fd >= 0:
                os.close(fd)

    def _forget_inherited(self) -> None:
        for name in ("_read_fd", "_write_fd"):
            fd = getattr(self, name)
            setattr(self, name, -1)
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)


def _after_fork_in_child() -> None:
    """A forked child must not eat its parent's wake-ups."""
    for bell in list(_OPEN):
        bell._forget_inherited()
    _OPEN.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def open_doorbell(directory: Path, owner_id: str) -> Doorbell | None:
    """Create a doorbell, or return None where named pipes don't work."""
    if not hasattr(os, "mkfifo"):  # pragma: no cover - Windows
        return None
    try:
        return Doorbell(directory, owner_id)
    except OSError:
        return None


class Ringer:
    """A publisher's side: rings every consumer's doorbell after a commit.

    The directory is listed on every ring, so a consumer that just appeared
    is rung too; the pipes' write ends stay open between rings, because
    opening and closing each one per publish costs more than the publish.
    Opening a pipe nobody reads fails (``ENXIO``) and writing to one whose
    reader died fails (``EPIPE``): that consumer is gone and the reclaimer
    removes its file. A full pipe (``EAGAIN``) already holds a ring.
    """

    def __init__(self, directory: Path) -> None:
        self.directory = str(directory)
        self._fds: dict[str, int] = {}
        self._lock = threading.Lock()

    def ring(self) -> int:
        """Ring every doorbell; return how many consumers were reached."""
        try:
            names = {n for n in os.listdir(self.directory) if n.endswith(WAKE_SUFFIX)}
        except FileNotFoundError:
            names = set()
        rung = 0
        with self._lock:
            for gone in self._fds.keys() - names:
                os.close(self._fds.pop(gone))
            for name in names:
                fd = self._fds.get(name)
                if fd is None:
                    fd = self._open(name)
                    if fd is None:
                        continue
                    self._fds[name] = fd
                try:
                    os.write(fd, b"\1")
                except BlockingIOError:
                    pass
                except OSError:
                    os.close(self._fds.pop(name))
                    continue
                rung += 1
        return rung

    def _open(self, name: str) -> int | None:
        try:
            fd = os.open(os.path.join(self.directory, name), os.O_WRONLY | os.O_NONBLOCK)
        except OSError:
            return None
        if not stat.S_ISFIFO(os.fstat(fd).st_mode):
            os.close(fd)
            return None
        return fd

    def close(self) -> None:
        """Close the cached write ends."""
        with self._lock:
            for fd in self._fds.values():
                with contextlib.suppress(OSError):
                    os.close(fd)
            self._fds.clear()


def forget_doorbell(directory: Path, owner_id: str) -> None:
    """Delete a dead consumer's pipe."""
    with contextlib.suppress(OSError):
        (directory / (owner_id + WAKE_SUFFIX)).unlink()
