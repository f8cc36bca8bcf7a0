"""Alembic migrations, run on API start-up and by ``faafo-api migrate``.

Several API processes may start at once against one database; a database-level
lock (advisory lock on PostgreSQL, ``GET_LOCK`` on MySQL/MariaDB, the write
lock on SQLite) makes exactly one of them migrate while the others wait.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, text

from faafo.store.database import Database

MIGRATIONS = Path(__file__).with_name("migrations")
_LOCK_KEY = 0x46AAF0  # arbitrary, stable: "faafo migrations"


def alembic_config(connection: Connection) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


@contextmanager
def _migration_lock(connection: Connection) -> Iterator[None]:
    backend = connection.dialect.name
    if backend == "postgresql":
        connection.execute(text("SELECT pg_advisory_lock(:k)"), {"k": _LOCK_KEY})
        try:
            yield
        finally:
            connection.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": _LOCK_KEY})
    elif backend in ("mysql", "mariadb"):
        connection.execute(text("SELECT GET_LOCK('faafo_migrations', 300)"))
        try:
            yield
        finally:
            connection.execute(text("SELECT RELEASE_LOCK('faafo_migrations')"))
    else:
        yield


def upgrade(database: Database, revision: str = "head") -> None:
    """Bring the schema to ``revision``; a no-op when it is already there."""
    with database.engine.connect() as connection, _migration_lock(connection):
        connection.commit()
        command.upgrade(alembic_config(connection), revision)
        connection.commit()


def current_revision(database: Database) -> str | None:
    with database.engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def head_revision() -> str | None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return ScriptDirectory.from_config(config).get_current_head()
