"""The SQLite store under the embedded queue: opening, claiming, polling cost."""

from __future__ import annotations

import multiprocessing
import sqlite3
from pathlib import Path
from typing import Any

from faafo.messaging.embedded_store import QueueStore

CTX = multiprocessing.get_context("spawn")


def _open_and_put(path: Path, n: int, start: Any, out: Any) -> None:
    start.wait(30)
    store = QueueStore(path)
    store.declare_queue("q")
    store.put(["q"], f"m{n}")
    store.close()
    out.put(n)


def test_many_processes_can_create_the_file_at_once(tmp_path: Path) -> None:
    """``faafo up`` starts the API and all workers together on a fresh file."""
    path = tmp_path / "new" / "queue.sqlite3"
    start, out = CTX.Event(), CTX.Queue()
    children = [CTX.Process(target=_open_and_put, args=(path, n, start, out))
                for n in range(6)]
    for child in children:
        child.start()
    start.set()
    assert sorted(out.get(timeout=30) for _ in children) == list(range(6))
    for child in children:
        child.join(10)
        assert child.exitcode == 0
    store = QueueStore(path)
    assert store.ready_count("q") == 6
    assert store.queue_exists("q")
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    store.close()


def test_claim_is_exclusive_and_release_keeps_the_place(tmp_path: Path) -> None:
    a, b = QueueStore(tmp_path / "q.sqlite3"), QueueStore(tmp_path / "q.sqlite3")
    a.put(["q"], "first")
    a.put(["q"], "second")
    got = a.claim("q", "owner-a")
    assert got is not None and (got.payload, got.deliveries) == ("first", 1)
    other = b.claim("q", "owner-b")
    assert other is not None and other.payload == "second"
    assert b.claim("q", "owner-b") is None
    assert b.release([got.id], "owner-b") == 0  # not b's to give back
    assert a.release([got.id], "owner-a") == 1
    again = b.claim("q", "owner-b")
    assert again is not None and (again.id, again.deliveries) == (got.id, 2)
    assert b.owners().keys() == {"owner-b"}
    assert b.release_owner("owner-b") == 2
    assert a.ready_count("q") == 2
    a.close()
    b.close()


def test_data_version_moves_only_for_other_connections(tmp_path: Path) -> None:
    """The cheap change check that lets idle pollers skip the queries."""
    a, b = QueueStore(tmp_path / "q.sqlite3"), QueueStore(tmp_path / "q.sqlite3")
    seen = a.data_version()
    assert not a.has_ready("q")
    assert a.data_version() == seen
    b.put(["q"], "x")
    assert a.data_version() != seen
    assert a.has_ready("q")
    a.close()
    b.close()
