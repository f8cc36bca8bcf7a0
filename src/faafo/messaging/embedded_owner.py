"""Who holds a delivered message, and is that holder still alive?

The embedded queue (:mod:`faafo.messaging.embedded`) marks every delivered,
not yet acknowledged message with the id of the connection that received it.
When that process dies without saying goodbye (``kill -9``, OOM killer, power
cut of a container) its messages must become deliverable again within
seconds, and *only* then: a consumer that is merely slow must keep them, or
two live workers would render the same task.

Why a file lock rather than a pid: the kernel releases an ``flock`` lock the
moment the last descriptor of its open file is closed, which includes every
way a process can die. So "can I take the lock?" is an exact, race-free
liveness test that needs no ``/proc`` parsing, is immune to pid reuse and
works across pid namespaces (containers sharing a volume) and on macOS.

Each owner is one file ``<owners dir>/<owner id>.lock`` held with
``LOCK_EX`` for the owner's lifetime. It is created under a temporary name,
locked, and only then renamed into place, so no checker can ever see an
unlocked owner file of a live owner. A checker that manages to lock a file
knows its owner is gone; it reclaims the owner's messages and deletes the
file.

On platforms without :mod:`fcntl` (Windows) liveness is unknown and the
queue falls back to its visibility timeout.
"""

from __future__ import annotations

import contextlib
import os
import time
import uuid
import weakref
from collections.abc import Iterator
from pathlib import Path

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

#: File name suffix of a published owner file.
LOCK_SUFFIX = ".lock"
#: File name suffix while an owner file is being created (not yet locked).
TMP_SUFFIX = ".tmp"
#: Temporary files older than this with no lock holder are debris of a
#: process that died while creating its owner file.
STALE_TMP_SECONDS = 60.0

#: Every live owner of this process, so that a forked child can let go of
#: the descriptors it inherited (see :func:`_after_fork_in_child`).
_LIVE_OWNERS: weakref.WeakSet[OwnerLock] = weakref.WeakSet()


def liveness_supported() -> bool:
    """Return whether this platform can tell a dead owner from a live one."""
    return fcntl is not None


def owners_dir_for(db_path: Path) -> Path:
    """Return the directory of owner files that belongs to a queue file.

    Named like SQLite's own ``-wal`` / ``-shm`` companions so that the
    three always travel together.
    """
    return db_path.with_name(db_path.name + "-owners")


class OwnerLock:
    """An owner identity that stays locked exactly as long as it is alive."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.id = f"{os.getpid()}-{uuid.uuid4().hex[:16]}"
        self._fd: int | None = None
        if fcntl is None:  # pragma: no cover - Windows
            return
        directory.mkdir(parents=True, exist_ok=True)
        tmp = directory / (self.id + TMP_SUFFIX)
        fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            os.write(fd, f"pid {os.getpid()}\n".encode())
            os.replace(tmp, self.path)
        except BaseException:
            os.close(fd)
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise
        self._fd = fd
        _LIVE_OWNERS.add(self)

    @property
    def path(self) -> Path:
        """The owner file."""
        return self.directory / (self.id + LOCK_SUFFIX)

    @property
    def held(self) -> bool:
        """Whether this process still holds the lock."""
        return self._fd is not None

    def release(self) -> None:
        """Give up the identity: delete the file, then drop the lock.

        Deleting first means no checker can mistake the brief unlocked
        state for a crash; anything the owner still held has been returned
        to the queue by the caller before this point.
        """
        fd, self._fd = self._fd, None
        _LIVE_OWNERS.discard(self)
        if fd is None:
            return
        with contextlib.suppress(OSError):
            self.path.unlink()
        os.close(fd)

    def _forget_inherited(self) -> None:
        """Close a descriptor inherited through ``fork`` without unlocking.

        The lock belongs to the open file shared with the parent, so closing
        the child's copy leaves the parent's lock in place, and the child
        can no longer keep a dead parent "alive".
        """
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)


def _after_fork_in_child() -> None:
    for owner in list(_LIVE_OWNERS):
        owner._forget_inherited()
    _LIVE_OWNERS.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def owner_is_dead(directory: Path, owner_id: str) -> bool | None:
    """Return True if *owner_id* is certainly gone, False if alive, None if unknown.

    A missing owner file means dead too: owner files are published before
    their owner claims anything, and only removed after it stopped.
    """
    if fcntl is None:  # pragma: no cover - Windows
        return None
    with _probe(directory / (owner_id + LOCK_SUFFIX)) as dead:
        return dead


@contextlib.contextmanager
def _probe(path: Path) -> Iterator[bool]:
    """Yield whether *path* is unlocked (its owner dead), holding the lock meanwhile."""
    assert fcntl is not None
    try:
        fd = os.open(path, os.O_RDWR)
    except FileNotFoundError:
        yield True
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
        else:
            yield True
    finally:
        os.close(fd)


def dead_owner_files(directory: Path, exclude: str | None = None) -> list[str]:
    """Return the ids of owners in *directory* whose process is gone.

    Also sweeps temporary files left by a process that died while creating
    its owner file (they never owned a message).
    """
    if fcntl is None:  # pragma: no cover - Windows
        return []
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return []
    dead: list[str] = []
    now = time.time()
    for name in names:
        path = directory / name
        if name.endswith(LOCK_SUFFIX):
            owner_id = name[: -len(LOCK_SUFFIX)]
            if owner_id != exclude and owner_is_dead(directory, owner_id):
                dead.append(owner_id)
        elif name.endswith(TMP_SUFFIX):
            with contextlib.suppress(OSError):
                if now - path.stat().st_mtime > STALE_TMP_SECONDS:
                    with _probe(path) as unlocked:
                        if unlocked:
                            path.unlink()
    return dead


def forget_owner_file(directory: Path, owner_id: str) -> None:
    """Delete a dead owner's file once its messages have been reclaimed."""
    with contextlib.suppress(OSError):
        (directory / (owner_id + LOCK_SUFFIX)).unlink()
