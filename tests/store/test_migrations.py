"""Revision 0004 on a database with queued tasks from before it."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa

from faafo.store import fractals as store
from faafo.store import migrate
from faafo.store.database import connect


def test_tasks_queued_before_0004_count_one_message_per_publish_instant(database_url):
    database = connect(database_url)
    migrate.upgrade(database, "0003")
    one, two = datetime(2026, 1, 1, 12, 0, 0, 1), datetime(2026, 1, 1, 12, 0, 5, 2)
    rows = [
        ("a", "queued", one),
        ("b", "queued", one),
        ("c", "queued", two),
        ("d", "queued", None),  # never published
        ("e", "done", one),
    ]
    fractals = sa.table(
        "fractals",
        *(sa.column(name) for name in ("uuid", "width", "height", "iterations", "xa", "xb")),
        *(sa.column(name) for name in ("ya", "yb", "kind", "palette", "status", "attempts")),
        sa.column("created_at"),
        sa.column("published_at"),
    )
    with database.engine.begin() as connection:
        connection.execute(
            sa.insert(fractals),
            [
                {
                    "uuid": uuid,
                    "width": 8,
                    "height": 8,
                    "iterations": 8,
                    "xa": -1.0,
                    "xb": 1.0,
                    "ya": -1.0,
                    "yb": 1.0,
                    "kind": "julia",
                    "palette": "faafo",
                    "status": status,
                    "attempts": 0,
                    "created_at": one,
                    "published_at": published,
                }
                for uuid, status, published in rows
            ],
        )
    migrate.upgrade(database)
    with database.reading() as session:
        group = {r.uuid: r.publish_group for r in store.get_many(session, list("abcde"))}
    assert group["a"] == group["b"] is not None
    assert group["c"] not in (None, group["a"])
    assert group["d"] is None and group["e"] is None
    migrate.upgrade(database, "0003")  # and back: the downgrade works
    migrate.upgrade(database)
    database.dispose()
