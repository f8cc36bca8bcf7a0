"""Gallery pages under a worker filter, on every back end: the rows a worker made *or*
holds (running, failed), newest first, each exactly once, whatever the page size."""

from __future__ import annotations

import random
from datetime import datetime, timedelta

from sqlalchemy import insert

from faafo.store import stats as queries
from faafo.store.models import DONE, FAILED, QUEUED, RUNNING, Fractal

WORKERS = ("w-a", "w-b")


def fractal(uuid: str, created: datetime, status: str, worker: str | None) -> dict:
    row = {
        "uuid": uuid, "width": 8, "height": 8, "iterations": 8, "xa": -1.0, "xb": 1.0,
        "ya": -1.0, "yb": 1.0, "kind": "julia", "palette": "faafo", "seed": 1,
        "status": status, "attempts": 0 if status == QUEUED else 1, "created_at": created,
        "worker": worker,
    }
    if status == DONE:
        row.update(generated_by=worker, size=1, checksum="0" * 64, duration=0.1)
    return row


def test_worker_pages_list_what_it_made_and_holds_once_newest_first(database):
    rng = random.Random(5)
    start = datetime(2026, 1, 1)
    rows = []
    for n in range(60):
        # Several tasks of one request share created_at: the order then follows the uuid.
        created = start + timedelta(seconds=n // 3)
        status = rng.choice((QUEUED, RUNNING, DONE, DONE, DONE, FAILED))
        worker = None if status == QUEUED else rng.choice(WORKERS)
        rows.append(fractal(f"{rng.getrandbits(128):032x}", created, status, worker))
    with database.session() as session:
        session.execute(insert(Fractal), rows)
    everything = sorted(rows, key=lambda r: (r["created_at"], r["uuid"]), reverse=True)
    with database.reading() as session:
        for worker in WORKERS:
            filters = queries.GalleryFilters(worker=worker)
            expected = [r["uuid"] for r in everything if r["worker"] == worker]
            assert {r["status"] for r in everything if r["uuid"] in expected} >= {
                RUNNING, DONE, FAILED}, "the case covers made, running and failed rows"
            anchor = queries.newest(session, filters)
            assert anchor is not None and anchor.uuid == expected[0]
            assert queries.count_from(session, filters, anchor) == len(expected)
            for per_page in (1, 4, 7, 100):
                shown = []
                for number in range(1, len(expected) // per_page + 3):
                    shown += [f.uuid for f in queries.page_from(session, filters, anchor,
                                                                number, per_page)]
                assert shown == expected, (worker, per_page)
            # Counted from an older anchor, the page starts there.
            older = queries.Anchor(
                next(r["created_at"] for r in everything if r["uuid"] == expected[5]), expected[5]
            )
            page = queries.page_from(session, filters, older, 1, 3)
            assert [f.uuid for f in page] == expected[5:8]
