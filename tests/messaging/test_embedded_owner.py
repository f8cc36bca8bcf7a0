"""Owner lock files tell a dead consumer from a live (or merely slow) one."""

from __future__ import annotations

import multiprocessing
import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from faafo.messaging import embedded_owner as owners
from faafo.messaging.embedded_owner import OwnerLock, dead_owner_files, owner_is_dead

pytestmark = pytest.mark.skipif(not owners.liveness_supported(), reason="needs fcntl")

CTX = multiprocessing.get_context("spawn")


def _hold(directory: Path, out: Any, fork_grandchild: bool) -> None:
    owner = OwnerLock(directory)
    grandchild = 0
    if fork_grandchild:
        grandchild = os.fork()
        if grandchild == 0:  # the grandchild outlives its parent
            time.sleep(60)
            os._exit(0)
    out.put((owner.id, grandchild))
    time.sleep(60)


def test_live_and_dead_owners(tmp_path: Path) -> None:
    out = CTX.Queue()
    child = CTX.Process(target=_hold, args=(tmp_path, out, False), daemon=True)
    child.start()
    try:
        owner_id, _ = out.get(timeout=30)
        assert owner_is_dead(tmp_path, owner_id) is False
        assert dead_owner_files(tmp_path) == []
        os.kill(child.pid, signal.SIGKILL)
        child.join(5)
        assert owner_is_dead(tmp_path, owner_id) is True
        assert dead_owner_files(tmp_path) == [owner_id]
    finally:
        child.kill()


def test_forked_child_does_not_keep_a_dead_owner_alive(tmp_path: Path) -> None:
    if not hasattr(os, "fork"):
        pytest.skip("needs fork")
    out = CTX.Queue()
    child = CTX.Process(target=_hold, args=(tmp_path, out, True), daemon=True)
    child.start()
    owner_id, grandchild = out.get(timeout=30)
    try:
        assert owner_is_dead(tmp_path, owner_id) is False
        os.kill(child.pid, signal.SIGKILL)
        # not join(): the grandchild inherited the sentinel join() waits on
        deadline = time.monotonic() + 5
        while child.is_alive() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert owner_is_dead(tmp_path, owner_id) is True
    finally:
        child.kill()
        os.kill(grandchild, signal.SIGKILL)


def test_same_process_owners_are_distinct_and_release_cleans_up(tmp_path: Path) -> None:
    first, second = OwnerLock(tmp_path), OwnerLock(tmp_path)
    assert first.id != second.id
    # A lock held by another connection of this very process counts as alive.
    assert owner_is_dead(tmp_path, first.id) is False
    assert dead_owner_files(tmp_path, exclude=second.id) == []
    first.release()
    first.release()  # idempotent
    assert not first.path.exists()
    assert owner_is_dead(tmp_path, first.id) is True  # file gone: dead
    second.release()
    assert list(tmp_path.iterdir()) == []


def test_stale_temporary_files_are_swept(tmp_path: Path) -> None:
    stale = tmp_path / ("1-deadbeef" + owners.TMP_SUFFIX)
    stale.write_text("pid 1\n")
    old = time.time() - owners.STALE_TMP_SECONDS - 10
    os.utime(stale, (old, old))
    fresh = tmp_path / ("2-cafe" + owners.TMP_SUFFIX)
    fresh.write_text("pid 2\n")
    assert dead_owner_files(tmp_path) == []
    assert not stale.exists()
    assert fresh.exists()  # may belong to an owner being created right now
