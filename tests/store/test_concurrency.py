"""Races between real sessions on SQLite, PostgreSQL and MariaDB: duplicate creates, last bands.

Each test holds one transaction open in one thread while another runs into it, and
commits only once the other is seen waiting for a lock (or has finished), so the
interleaving that used to go wrong happens every time, not by luck.
"""

from __future__ import annotations

import threading
import time
import uuid as uuidlib
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session

from faafo.api.services import Services
from faafo.config import ApiSettings, load_settings
from faafo.messaging.publisher import Publisher
from faafo.store import bands, idempotency
from faafo.store import fractals as store
from faafo.store.database import Database

DEADLINE = 60.0


@pytest.fixture
def services(database, database_url, tmp_path):
    settings = load_settings(
        ApiSettings,
        {
            "data_dir": tmp_path,
            "database_url": database_url,
            "transport_url": f"memory://{uuidlib.uuid4().hex}",
        },
    )
    publisher = Publisher(settings.transport_url)
    yield Services(settings=settings, database=database, publisher=publisher)
    publisher.close()


def blocked_by(holder: Session) -> int:
    """How many sessions wait for a lock that ``holder``'s open transaction holds.

    Asked about the holder itself (its backend or transaction id), so other tests
    on the same server never count. SQLite: 0, its lock waits are not observable.
    """
    backend = holder.bind.dialect.name
    if backend == "postgresql":
        mine = holder.execute(text("SELECT pg_backend_pid()")).scalar()
        query = "SELECT count(*) FROM pg_stat_activity WHERE :mine = ANY(pg_blocking_pids(pid))"
    elif backend in ("mysql", "mariadb"):
        mine = holder.execute(
            text(
                "SELECT trx_id FROM information_schema.innodb_trx"
                " WHERE trx_mysql_thread_id = CONNECTION_ID()"
            )
        ).scalar()
        query = (
            "SELECT count(*) FROM information_schema.innodb_lock_waits"
            " WHERE blocking_trx_id = :mine"
        )
    else:
        return 0
    with holder.bind.engine.connect() as connection:
        return int(connection.execute(text(query), {"mine": mine}).scalar() or 0)


def until_blocked_or_done(holder: Session, other: threading.Thread) -> None:
    """Wait (a condition, not a guess) until ``other`` waits on ``holder`` or has finished.

    On SQLite the second writer waits at BEGIN for the write lock, which no query
    can see; letting the first commit at once gives the same outcome there.
    """
    if holder.bind.dialect.name == "sqlite":
        return
    deadline = time.monotonic() + DEADLINE
    while other.is_alive() and not blocked_by(holder):
        assert time.monotonic() < deadline, "the other session neither blocked nor finished"
        # InnoDB refreshes its information_schema snapshot of transactions only when
        # nobody read it for 0.1 s: polling faster would keep reading a stale one.
        time.sleep(0.25)


class Outcome:
    """What a thread returned or raised."""

    def __init__(self, work: Callable[[], Any]) -> None:
        self.value: Any = None
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, args=(work,), daemon=True)

    def _run(self, work: Callable[[], Any]) -> None:
        try:
            self.value = work()
        except BaseException as error:  # reported by the test
            self.error = error

    def start(self) -> Outcome:
        self.thread.start()
        return self

    def join(self) -> Outcome:
        self.thread.join(DEADLINE)
        assert not self.thread.is_alive(), "the thread is stuck"
        return self


def new_task(uuid: str | None = None, **overrides: Any) -> dict:
    body = {
        "uuid": uuid,
        "width": 32,
        "height": 24,
        "iterations": 64,
        "xa": -2.0,
        "xb": 2.0,
        "ya": -1.5,
        "yb": 1.5,
        "kind": "julia",
        "palette": "faafo",
        "c_real": None,
        "c_imag": None,
        "seed": 5,
        "batch": None,
    }
    body.update(overrides)
    return body


def test_two_apis_creating_the_same_new_uuid_one_gets_409(database, services):
    """The second insert passes the existence check, then hits the primary key."""
    uuid = str(uuidlib.uuid4())
    started = threading.Barrier(2, timeout=DEADLINE)
    with database.session() as first:
        store.insert_tasks(first, [new_task(uuid)], store.utcnow())

        def second() -> list:
            started.wait()
            return services.create([new_task(uuid, width=40)])

        other = Outcome(second).start()
        started.wait()
        until_blocked_or_done(first, other.thread)
    other.join()
    assert isinstance(other.error, store.DuplicateTask), repr(other.error)
    assert uuid in str(other.error)
    with database.reading() as session:
        assert store.get(session, uuid).width == 32, "the first insert stands"


def test_a_retry_racing_its_original_gets_the_original_tasks(database, services):
    """Same Idempotency-Key and body on two APIs at once: one creates, the other replays."""
    payload = [{"width": 32}]  # what the key's body hash is computed from
    request = idempotency.Request.of("racing-key", payload)
    started = threading.Barrier(2, timeout=DEADLINE)
    now = store.utcnow()
    with database.session() as first:
        store.insert_tasks(first, [new_task("00000000-0000-4000-8000-000000000001")], now)
        idempotency.remember(first, request, ["00000000-0000-4000-8000-000000000001"], now)

        def retry() -> list:
            started.wait()
            return services.create([new_task()], request)  # a server-chosen uuid

        other = Outcome(retry).start()
        started.wait()
        until_blocked_or_done(first, other.thread)
    other.join()
    assert other.error is None, repr(other.error)
    assert [row.uuid for row in other.value] == ["00000000-0000-4000-8000-000000000001"]
    with database.reading() as session:
        assert store.count(session, store.Filters()) == 1


def banded(database: Database, count: int = 3) -> str:
    uuid = str(uuidlib.uuid4())
    with database.session() as session:
        store.insert_tasks(session, [new_task(uuid, height=count * 8)], store.utcnow())
        bands.split(session, uuid, [(i * 8, i * 8 + 8) for i in range(count)])
    return uuid


def store_band(database: Database, uuid: str, index: int) -> tuple[str, bool]:
    with database.session() as session:
        return bands.store_band(session, uuid, index, b"band %d" % index, 0.1, "w")


def test_the_last_two_bands_stored_at_once_complete_the_fractal_once(database):
    uuid = banded(database)
    assert store_band(database, uuid, 0) == ("stored", False)
    started = threading.Barrier(2, timeout=DEADLINE)
    first_stored = threading.Event()

    def second() -> tuple[str, bool]:
        started.wait()
        assert first_stored.wait(DEADLINE)
        return store_band(database, uuid, 2)

    other = Outcome(second).start()
    started.wait()
    with database.session() as session:
        mine = bands.store_band(session, uuid, 1, b"band 1", 0.1, "w")
        first_stored.set()
        # Commit only once the other delivery is inside its own transaction.
        until_blocked_or_done(session, other.thread)
    other.join()
    assert other.error is None, repr(other.error)
    assert sorted([mine, other.value]) == [("stored", False), ("stored", True)], (
        "exactly one of the two completes the fractal"
    )


def test_bands_stored_from_many_threads_complete_the_fractal_once(database):
    """No ordering forced: eight deliveries start together at a barrier."""
    count = 8
    uuid = banded(database, count)
    started = threading.Barrier(count, timeout=DEADLINE)

    def deliver(index: int) -> Callable[[], tuple[str, bool]]:
        def work() -> tuple[str, bool]:
            started.wait()
            return store_band(database, uuid, index)

        return work

    outcomes = [Outcome(deliver(i)).start() for i in range(count)]
    results = [o.join() for o in outcomes]
    assert [o.error for o in results] == [None] * count
    assert sorted(o.value for o in results) == [("stored", False)] * (count - 1) + [
        ("stored", True)
    ]


def test_a_band_claim_and_a_band_store_on_one_fractal_do_not_deadlock(database):
    """Both lock the fractal row first, then band rows."""
    from datetime import timedelta

    uuid = banded(database, 2)
    started = threading.Barrier(2, timeout=DEADLINE)

    def claim() -> Any:
        started.wait()
        with database.session() as session:
            return bands.claim_band(session, uuid, 1, "w", store.utcnow(), timedelta(seconds=60), 5)

    other = Outcome(claim).start()
    started.wait()
    assert store_band(database, uuid, 0) == ("stored", False)
    other.join()
    assert other.error is None, repr(other.error)
    assert other.value.render
