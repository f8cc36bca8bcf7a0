"""What the store's tests share: each runs on SQLite, PostgreSQL and MariaDB
(``database_url``), and the server-backed variants are marked as needing servers."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from faafo.store import migrate
from faafo.store.database import Database, connect


@pytest.fixture(autouse=True)
def _servers_marker(request):
    if "sqlite" not in request.node.name:
        request.node.add_marker(pytest.mark.servers)


@pytest.fixture
def database(database_url) -> Iterator[Database]:
    """The database of ``database_url``, migrated to head."""
    db = connect(database_url)
    migrate.upgrade(db)
    yield db
    db.dispose()
