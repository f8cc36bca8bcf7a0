"""The SQLite file behind the embedded queue: schema and every statement.

Kept apart from the kombu glue in :mod:`faafo.messaging.embedded` so that
the queue's semantics (claim, ack, release, reclaim) are plain methods that
read like the list of guarantees they implement.

Rules that the statements follow, and why:

* Every write is one tiny transaction (a single statement, or a
  ``BEGIN IMMEDIATE`` block of a few), because SQLite has one writer at a
  time and publishers must never wait behind a slow poller.
* A poll of an empty queue never writes: it checks ``PRAGMA data_version``
  (has anybody else committed since I last looked?) and, if so, runs a
  read-only ``SELECT`` first. Only when there is something to take does it
  run the claiming ``UPDATE``, which picks the row inside the write lock,
  so two consumers can never claim the same row.
* Rows are deleted only on acknowledgement. A delivered row keeps its
  ``id`` and only gains an ``owner``; releasing it clears the owner, so a
  requeued message keeps its place at the head of its queue.
* Publishes are fsynced (``synchronous=FULL`` for that commit), everything
  else is not: losing a claim or an ack to a power cut only causes a
  redelivery, losing a publish would lose a task.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

#: Bumped when the schema changes incompatibly.
SCHEMA_VERSION = 1
#: ``UPDATE ... RETURNING`` (atomic claim in one statement) needs 3.35.
MIN_SQLITE = (3, 35, 0)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS messages (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    queue       TEXT    NOT NULL,
    priority    INTEGER NOT NULL DEFAULT 0,
    payload     TEXT    NOT NULL,
    owner       TEXT,
    claimed_at  REAL,
    deliveries  INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS messages_ready
    ON messages (queue, priority DESC, id) WHERE owner IS NULL;
CREATE INDEX IF NOT EXISTS messages_owned
    ON messages (owner) WHERE owner IS NOT NULL;
CREATE TABLE IF NOT EXISTS queues (
    name        TEXT PRIMARY KEY
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS exchanges (
    name        TEXT PRIMARY KEY,
    type        TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS bindings (
    queue       TEXT NOT NULL,
    exchange    TEXT NOT NULL,
    routing_key TEXT NOT NULL,
    PRIMARY KEY (exchange, routing_key, queue)
) WITHOUT ROWID;
"""


@dataclass(frozen=True, slots=True)
class Claimed:
    """A row handed to a consumer: its id is the delivery tag."""

    id: int
    payload: str
    deliveries: int


class QueueStore:
    """One SQLite connection to the queue file, safe to share between threads.

    kombu lets other threads acknowledge messages than the one draining
    events, so every use of the connection goes through one lock.
    """

    def __init__(
        self, path: Path, *, busy_timeout: float = 10.0, fsync_publish: bool = False
    ) -> None:
        if sqlite3.sqlite_version_info < MIN_SQLITE:
            raise RuntimeError(
                f"the embedded queue needs SQLite >= 3.35 (found {sqlite3.sqlite_version})"
            )
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.fsync_publish = fsync_publish
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = sqlite3.connect(
            path, timeout=busy_timeout, isolation_level=None, check_same_thread=False
        )
        self._sync_full = False
        self._setup()

    # -- connection management -------------------------------------------

    def _setup(self) -> None:
        db = self._conn()
        # Switching to WAL needs a moment of exclusive access; the busy
        # timeout covers many processes opening a fresh file at once.
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute("PRAGMA journal_size_limit=67108864")
        with self._write(db):
            version = db.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise RuntimeError(
                    f"{self.path} was written by a newer faafo (queue schema {version})"
                )
            for statement in filter(str.strip, _SCHEMA.split(";")):
                db.execute(statement)
            db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")

    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            raise sqlite3.OperationalError("the embedded queue store is closed")
        return self._db

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._db is None

    def close(self) -> None:
        """Close the SQLite connection (idempotent)."""
        with self._lock:
            db, self._db = self._db, None
        if db is not None:
            db.close()

    @contextmanager
    def _write(self, db: sqlite3.Connection) -> Iterator[None]:
        """A multi-statement write transaction that takes the write lock up front.

        ``BEGIN IMMEDIATE`` waits (busy timeout) for the lock at the start
        instead of failing half-way when a read transaction cannot be
        upgraded.
        """
        db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    def _set_sync(self, db: sqlite3.Connection, full: bool) -> None:
        if full != self._sync_full:
            db.execute(f"PRAGMA synchronous={'FULL' if full else 'NORMAL'}")
            self._sync_full = full

    # -- publishing --------------------------------------------------------

    def put(self, queues: Iterable[str], payload: str, priority: int = 0) -> None:
        """Append one message to each queue; durable when this returns."""
        rows = [(queue, priority, payload) for queue in queues]
        if not rows:
            return
        with self._lock:
            db = self._conn()
            self._set_sync(db, self.fsync_publish)
            insert = "INSERT INTO messages (queue, priority, payload) VALUES (?, ?, ?)"
            if len(rows) == 1:
                db.execute(insert, rows[0])
            else:
                with self._write(db):
                    db.executemany(insert, rows)

    # -- consuming ---------------------------------------------------------

    def data_version(self) -> int:
        """A number that changes whenever *another* connection commits."""
        with self._lock:
            return self._conn().execute("PRAGMA data_version").fetchone()[0]

    def has_ready(self, queue: str) -> bool:
        """Read-only check, so that polling an empty queue takes no write lock."""
        with self._lock:
            row = (
                self._conn()
                .execute(
                    "SELECT 1 FROM messages WHERE queue = ? AND owner IS NULL LIMIT 1", (queue,)
                )
                .fetchone()
            )
        return row is not None

    def claim(self, queue: str, owner: str) -> Claimed | None:
        """Atomically take the first ready message of *queue* for *owner*.

        The row is chosen inside the ``UPDATE``, i.e. under SQLite's write
        lock, so concurrent consumers cannot take the same one.
        """
        with self._lock:
            db = self._conn()
            self._set_sync(db, False)
            row = db.execute(
                """
                UPDATE messages
                   SET owner = ?, claimed_at = ?, deliveries = deliveries + 1
                 WHERE id = (SELECT id FROM messages
                              WHERE queue = ? AND owner IS NULL
                              ORDER BY priority DESC, id LIMIT 1)
                RETURNING id, payload, deliveries
                """,
                (owner, time.time(), queue),
            ).fetchone()
        return None if row is None else Claimed(*row)

    def take(self, queue: str) -> Claimed | None:
        """Remove and return the first ready message (for ``no_ack`` consumers)."""
        with self._lock:
            db = self._conn()
            self._set_sync(db, False)
            row = db.execute(
                """
                DELETE FROM messages
                 WHERE id = (SELECT id FROM messages
                              WHERE queue = ? AND owner IS NULL
                              ORDER BY priority DESC, id LIMIT 1)
                RETURNING id, payload, deliveries + 1
                """,
                (queue,),
            ).fetchone()
        return None if row is None else Claimed(*row)

    def delete(self, ids: Iterable[int]) -> None:
        """Acknowledge (or drop) delivered messages: the only way a row leaves."""
        params = [(i,) for i in ids]
        if not params:
            return
        with self._lock:
            db = self._conn()
            self._set_sync(db, False)
            if len(params) == 1:
                db.execute("DELETE FROM messages WHERE id = ?", params[0])
            else:
                with self._write(db):
                    db.executemany("DELETE FROM messages WHERE id = ?", params)

    def release(self, ids: Iterable[int], owner: str) -> int:
        """Make messages this owner holds deliverable again, in their old place.

        Only rows still owned by *owner* are touched: a row already
        reclaimed (visibility timeout) and claimed by another consumer stays
        with that consumer.
        """
        params = [(i, owner) for i in ids]
        if not params:
            return 0
        sql = "UPDATE messages SET owner = NULL, claimed_at = NULL WHERE id = ? AND owner = ?"
        with self._lock:
            db = self._conn()
            self._set_sync(db, False)
            if len(params) == 1:
                return db.execute(sql, params[0]).rowcount
            with self._write(db):
                return sum(db.execute(sql, p).rowcount for p in params)

    def release_owner(self, owner: str) -> int:
        """Return every message held by *owner* (dead, or closing) to its queue."""
        with self._lock:
            db = self._conn()
            self._set_sync(db, False)
            return db.execute(
                "UPDATE messages SET owner = NULL, claimed_at = NULL WHERE owner = ?", (owner,)
            ).rowcount

    def owners(self) -> dict[str, float]:
        """Map each owner holding messages to its oldest claim time (read-only)."""
        with self._lock:
            rows = (
                self._conn()
                .execute(
                    "SELECT owner, MIN(claimed_at) FROM messages"
                    " WHERE owner IS NOT NULL GROUP BY owner"
                )
                .fetchall()
            )
        return {owner: claimed_at for owner, claimed_at in rows}

    def release_expired(self, older_than: float) -> int:
        """Last resort: return messages claimed before *older_than* (epoch s)."""
        with self._lock:
            db = self._conn()
            self._set_sync(db, False)
            return db.execute(
                "UPDATE messages SET owner = NULL, claimed_at = NULL"
                " WHERE owner IS NOT NULL AND claimed_at < ?",
                (older_than,),
            ).rowcount

    # -- queue management ----------------------------------------------------

    def ready_count(self, queue: str) -> int:
        """Messages waiting for a consumer (what AMQP reports as message_count)."""
        with self._lock:
            return (
                self._conn()
                .execute(
                    "SELECT COUNT(*) FROM messages WHERE queue = ? AND owner IS NULL", (queue,)
                )
                .fetchone()[0]
            )

    def unacked_count(self, queue: str) -> int:
        """Messages delivered and not yet acknowledged."""
        with self._lock:
            return (
                self._conn()
                .execute(
                    "SELECT COUNT(*) FROM messages WHERE queue = ? AND owner IS NOT NULL", (queue,)
                )
                .fetchone()[0]
            )

    def purge(self, queue: str) -> int:
        """Delete the ready messages of *queue*; delivered ones stay (as in AMQP)."""
        with self._lock:
            db = self._conn()
            self._set_sync(db, False)
            return db.execute(
                "DELETE FROM messages WHERE queue = ? AND owner IS NULL", (queue,)
            ).rowcount

    def declare_queue(self, queue: str) -> None:
        """Record that *queue* exists (for passive declares in other processes)."""
        with self._lock:
            db = self._conn()
            if db.execute("SELECT 1 FROM queues WHERE name = ?", (queue,)).fetchone():
                return
            self._set_sync(db, self.fsync_publish)
            db.execute("INSERT OR IGNORE INTO queues (name) VALUES (?)", (queue,))

    def queue_exists(self, queue: str) -> bool:
        """Whether *queue* was ever declared (and not deleted)."""
        with self._lock:
            return (
                self._conn().execute("SELECT 1 FROM queues WHERE name = ?", (queue,)).fetchone()
                is not None
            )

    def delete_queue(self, queue: str) -> None:
        """Forget *queue*, its bindings and all its messages."""
        with self._lock:
            db = self._conn()
            self._set_sync(db, False)
            with self._write(db):
                db.execute("DELETE FROM messages WHERE queue = ?", (queue,))
                db.execute("DELETE FROM bindings WHERE queue = ?", (queue,))
                db.execute("DELETE FROM queues WHERE name = ?", (queue,))

    def declare_exchange(self, exchange: str, type_: str) -> None:
        """Record an exchange and its type, so other processes route alike."""
        with self._lock:
            db = self._conn()
            if db.execute("SELECT 1 FROM exchanges WHERE name = ?", (exchange,)).fetchone():
                return
            self._set_sync(db, self.fsync_publish)
            db.execute(
                "INSERT OR IGNORE INTO exchanges (name, type) VALUES (?, ?)", (exchange, type_)
            )

    def delete_exchange(self, exchange: str) -> None:
        """Forget an exchange and its bindings (queues and messages stay)."""
        with self._lock:
            db = self._conn()
            with self._write(db):
                db.execute("DELETE FROM bindings WHERE exchange = ?", (exchange,))
                db.execute("DELETE FROM exchanges WHERE name = ?", (exchange,))

    def bind(self, queue: str, exchange: str, routing_key: str) -> None:
        """Persist a binding; a no-op (read only) when it already exists."""
        key = (exchange, routing_key, queue)
        with self._lock:
            db = self._conn()
            if db.execute(
                "SELECT 1 FROM bindings WHERE exchange = ? AND routing_key = ? AND queue = ?", key
            ).fetchone():
                return
            self._set_sync(db, self.fsync_publish)
            db.execute(
                "INSERT OR IGNORE INTO bindings (exchange, routing_key, queue) VALUES (?, ?, ?)",
                key,
            )

    def unbind(self, queue: str, exchange: str, routing_key: str) -> None:
        """Remove a persisted binding."""
        with self._lock:
            self._conn().execute(
                "DELETE FROM bindings WHERE exchange = ? AND routing_key = ? AND queue = ?",
                (exchange, routing_key, queue),
            )

    def bindings(self, exchange: str) -> tuple[str | None, list[tuple[str, str]]]:
        """Return the exchange's type (None if unknown) and its (queue, routing key) pairs."""
        with self._lock:
            db = self._conn()
            row = db.execute("SELECT type FROM exchanges WHERE name = ?", (exchange,)).fetchone()
            rows = db.execute(
                "SELECT queue, routing_key FROM bindings WHERE exchange = ?", (exchange,)
            ).fetchall()
        return (None if row is None else row[0]), [(q, rk) for q, rk in rows]
