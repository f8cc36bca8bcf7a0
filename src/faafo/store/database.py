"""Engine and session factory for a database URL, with each back end tuned once here."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

# FastAPI runs every sync route, and every run_in_threadpool call, on anyio's worker
# threads: 40 by default. Each may hold a database connection, and so may the
# reconciler and image downloads streaming their chunks. A pool smaller than that
# makes requests queue for a connection and, after the pool timeout, fail; so
# every back end gets room for all of them.
REQUEST_THREADS = 40
MAX_CONNECTIONS = REQUEST_THREADS + 8
_KEPT_OPEN = 10  # connections kept in the pool when idle; the rest close after use


@dataclass
class Database:
    """An engine and its session factory; one per process, passed to whoever needs it."""

    engine: Engine
    sessions: sessionmaker[Session]

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session that commits on success and rolls back on error."""
        with self.sessions() as session, session.begin():
            yield session

    @contextmanager
    def reading(self) -> Iterator[Session]:
        """A session for queries only: on SQLite it does not take the write lock."""
        bind = self.engine.execution_options(read_only=True)
        with self.sessions(bind=bind) as session, session.begin():
            yield session

    def ping(self) -> None:
        with self.engine.connect() as connection:
            connection.execute(text("SELECT 1"))

    def dispose(self) -> None:
        self.engine.dispose()


def _tune_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
        # WAL lets readers work while one process writes; the busy timeout makes
        # concurrent writers (several API processes) wait instead of failing.
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    # pysqlite's own transaction handling defers BEGIN; take the write lock at
    # BEGIN instead so that two writers never deadlock on a lock upgrade.
    @event.listens_for(engine, "begin")
    def _on_begin(connection) -> None:  # type: ignore[no-untyped-def]
        read_only = connection.get_execution_options().get("read_only", False)
        connection.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")


def connect(
    url: str,
    *,
    echo: bool = False,
    max_connections: int = MAX_CONNECTIONS,
    pool_timeout: float = 30.0,
) -> Database:
    """Open (lazily) the database at ``url``; SQLite files get their directory created.

    At most ``max_connections`` are open at once; a caller that finds none free
    for ``pool_timeout`` seconds gets ``sqlalchemy.exc.TimeoutError`` (the API
    answers 503).
    """
    parsed = make_url(url)
    kwargs: dict = {"echo": echo, "future": True}
    in_memory = parsed.get_backend_name() == "sqlite" and parsed.database in (None, "", ":memory:")
    if not in_memory:
        kept = min(_KEPT_OPEN, max_connections)
        kwargs.update(
            pool_size=kept, max_overflow=max_connections - kept, pool_timeout=pool_timeout
        )
    if parsed.get_backend_name() == "sqlite":
        if not in_memory:
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        kwargs["connect_args"] = {
            "timeout": 30,
            "check_same_thread": False,
            "isolation_level": None,
        }
    else:
        # Survive a database restart: test each pooled connection before use.
        kwargs.update(pool_pre_ping=True, pool_recycle=3600)
    engine = create_engine(url, **kwargs)
    if parsed.get_backend_name() == "sqlite":
        _tune_sqlite(engine)
    return Database(engine=engine, sessions=sessionmaker(engine, expire_on_commit=False))
