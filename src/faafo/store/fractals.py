"""Queries and state transitions on fractal records.

Every transition is a single conditional statement (``UPDATE ... WHERE status
IN (...)``) so that several API processes, a reconciler and redelivered
messages can race on the same task and still leave exactly one outcome.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import Double, LargeBinary, bindparam, delete, func, insert, or_, select, update
from sqlalchemy.orm import Session

from faafo.store.models import (
    CHUNK_SIZE,
    DONE,
    FAILED,
    QUEUED,
    RUNNING,
    UNFINISHED,
    Band,
    BandChunk,
    Fractal,
    ImageChunk,
)

_IN_CHUNK = 500  # bound on the size of IN (...) lists


def utcnow() -> datetime:
    """Naive UTC: what every back end stores and returns alike."""
    return datetime.now(UTC).replace(tzinfo=None)


def _chunks(items: Sequence[str], size: int = _IN_CHUNK) -> Iterator[Sequence[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class DuplicateTask(Exception):
    def __init__(self, uuids: list[str]) -> None:
        super().__init__(f"fractal already exists: {', '.join(uuids[:5])}")
        self.uuids = uuids


_TASK_FIELDS = (
    "width",
    "height",
    "iterations",
    "xa",
    "xb",
    "ya",
    "yb",
    "kind",
    "palette",
    "c_real",
    "c_imag",
    "batch",
)


def insert_tasks(
    session: Session, rows: list[dict], now: datetime, server_seeded: frozenset[str] = frozenset()
) -> list[dict]:
    """Insert new queued tasks in one statement; returns the rows actually inserted.

    A uuid that exists already with exactly the same parameters is a replay
    of the same request (a client or load balancer retrying after a lost
    answer): it is skipped, not an error. A uuid reused for a different task
    is refused. ``server_seeded``: uuids whose seed the API drew, not the client.
    """
    uuids = [row["uuid"] for row in rows]
    seen: set[str] = set()
    repeated = [u for u in uuids if u in seen or seen.add(u)]  # type: ignore[func-returns-value]
    if repeated:
        raise DuplicateTask(sorted(set(repeated)))
    existing = {f.uuid: f for f in get_many(session, uuids)}
    conflicting = [
        row["uuid"]
        for row in rows
        if row["uuid"] in existing
        and not _same_task(existing[row["uuid"]], row, row["uuid"] not in server_seeded)
    ]
    if conflicting:
        raise DuplicateTask(sorted(conflicting))
    new = [row for row in rows if row["uuid"] not in existing]
    if new:
        session.execute(
            insert(Fractal),
            [{**row, "status": QUEUED, "attempts": 0, "created_at": now} for row in new],
        )
    return new


def _same_task(stored: Fractal, row: dict, compare_seed: bool) -> bool:
    if compare_seed and row.get("seed") != stored.seed:
        return False
    return all(
        getattr(stored, name) == row.get(name, getattr(stored, name)) for name in _TASK_FIELDS
    )


def mark_published(session: Session, uuids: Sequence[str], now: datetime) -> None:
    for part in _chunks(uuids):
        session.execute(
            update(Fractal)
            .where(Fractal.uuid.in_(part), Fractal.status == QUEUED)
            .values(published_at=now)
        )


def get(session: Session, uuid: str) -> Fractal | None:
    return session.get(Fractal, uuid)


def get_many(session: Session, uuids: Sequence[str]) -> list[Fractal]:
    found: list[Fractal] = []
    for part in _chunks(uuids):
        found += session.scalars(select(Fractal).where(Fractal.uuid.in_(part))).all()
    return found


@dataclass(frozen=True)
class Filters:
    status: str | None = None
    batch: str | None = None
    generated_by: str | None = None

    def apply(self, query):  # type: ignore[no-untyped-def]
        if self.status:
            query = query.where(Fractal.status == self.status)
        if self.batch:
            query = query.where(Fractal.batch == self.batch)
        if self.generated_by:
            query = query.where(Fractal.generated_by == self.generated_by)
        return query


def count(session: Session, filters: Filters) -> int:
    return session.scalar(filters.apply(select(func.count()).select_from(Fractal))) or 0


def page(
    session: Session, filters: Filters, page_number: int, per_page: int, newest_first: bool = False
) -> list[Fractal]:
    """One page in a total order (creation time, then uuid), so pages never overlap."""
    order = (
        (Fractal.created_at.desc(), Fractal.uuid.desc())
        if newest_first
        else (Fractal.created_at, Fractal.uuid)
    )
    query = filters.apply(select(Fractal)).order_by(*order)
    query = query.offset((page_number - 1) * per_page).limit(per_page)
    return list(session.scalars(query))


def counts_by_status(session: Session, batch: str | None = None) -> dict[str, int]:
    query = select(Fractal.status, func.count()).group_by(Fractal.status)
    if batch:
        query = query.where(Fractal.batch == batch)
    return {status: n for status, n in session.execute(query)}


def done_by_worker(session: Session) -> dict[str | None, int]:
    query = (
        select(Fractal.generated_by, func.count())
        .where(Fractal.status == DONE)
        .group_by(Fractal.generated_by)
    )
    return {worker: n for worker, n in session.execute(query)}


def delete_fractal(session: Session, uuid: str) -> bool:
    session.execute(delete(ImageChunk).where(ImageChunk.fractal_uuid == uuid))
    return session.execute(delete(Fractal).where(Fractal.uuid == uuid)).rowcount > 0


@dataclass(frozen=True)
class Claim:
    """What a worker should do with one task of the message in its hand."""

    uuid: str
    render: bool
    reason: str = ""  # why not, when render is False
    attempt: int = 0


def claim(
    session: Session,
    uuids: Sequence[str],
    worker: str,
    now: datetime,
    lease: timedelta,
    max_attempts: int,
) -> list[Claim]:
    """Mark tasks running for ``worker``; tell it which ones still need rendering.

    A task that is done, failed or deleted is skipped (a duplicate delivery);
    a task delivered more than ``max_attempts`` times is failed for good, so a
    poison task cannot crash-loop the workers.
    """
    for part in _chunks(uuids):
        session.execute(
            update(Fractal)
            .where(Fractal.uuid.in_(part), Fractal.status.in_(UNFINISHED))
            .values(
                status=RUNNING,
                worker=worker,
                attempts=Fractal.attempts + 1,
                started_at=func.coalesce(Fractal.started_at, now),
                lease_until=now + lease,
            )
        )
    rows = {
        uuid: (status, attempts)
        for part in _chunks(uuids)
        for uuid, status, attempts in session.execute(
            select(Fractal.uuid, Fractal.status, Fractal.attempts).where(Fractal.uuid.in_(part))
        )
    }
    exhausted = [u for u, (status, n) in rows.items() if status == RUNNING and n > max_attempts]
    if exhausted:
        fail(session, exhausted, f"gave up after {max_attempts} attempts", now)
    claims = []
    for uuid in uuids:
        if uuid not in rows:
            claims.append(Claim(uuid, False, "unknown fractal (deleted?)"))
        elif uuid in exhausted:
            claims.append(Claim(uuid, False, "too many attempts"))
        elif rows[uuid][0] != RUNNING:
            claims.append(Claim(uuid, False, f"already {rows[uuid][0]}"))
        else:
            claims.append(Claim(uuid, True, attempt=rows[uuid][1]))
    return claims


def renew_leases(session: Session, uuids: Sequence[str], worker: str, until: datetime) -> int:
    renewed = 0
    for part in _chunks(uuids):
        renewed += session.execute(
            update(Fractal)
            .where(Fractal.uuid.in_(part), Fractal.status == RUNNING, Fractal.worker == worker)
            .values(lease_until=until)
        ).rowcount
    return renewed


def fail(session: Session, uuids: Sequence[str], error: str, now: datetime) -> int:
    failed = 0
    for part in _chunks(uuids):
        failed += session.execute(
            update(Fractal)
            .where(Fractal.uuid.in_(part), Fractal.status.in_(UNFINISHED))
            .values(status=FAILED, error=error[:2000], finished_at=now, lease_until=None)
        ).rowcount
    return failed


@dataclass(frozen=True)
class Result:
    uuid: str
    png: bytes
    checksum: str
    duration: float
    generated_by: str
    c_real: float | None = None
    c_imag: float | None = None
    thumbnail: bytes | None = None


def store_results(session: Session, results: Iterable[Result], now: datetime) -> dict[str, str]:
    """Store each result once: ``stored``, or why not (``duplicate``, ``unknown``, ``failed``).

    The status flip and the image rows are one transaction, and the flip only
    happens from an unfinished state, so a second delivery of the same result
    (a redelivered message, a retried upload) changes nothing. The flips of a
    whole batch go to the database as one statement (executemany); should a
    concurrent delivery win a row meanwhile, the batch is redone row by row.
    """
    results = list({r.uuid: r for r in results}.values())
    status_of = {
        uuid: status
        for part in _chunks([r.uuid for r in results])
        for uuid, status in session.execute(
            select(Fractal.uuid, Fractal.status).where(Fractal.uuid.in_(part))
        )
    }
    outcome = {
        r.uuid: {None: "unknown", DONE: "duplicate"}.get(status_of.get(r.uuid), "") for r in results
    }
    todo = [r for r in results if status_of.get(r.uuid) in UNFINISHED]
    for r in results:
        if not outcome[r.uuid] and r not in todo:
            outcome[r.uuid] = status_of[r.uuid]
    if not todo:
        return outcome
    statement = (
        update(Fractal)
        .where(
            Fractal.uuid == bindparam("b_uuid"),
            # no IN (...): expanding parameters cannot be used with executemany
            or_(Fractal.status == QUEUED, Fractal.status == RUNNING),
        )
        .values(
            status=DONE,
            error=None,
            finished_at=now,
            lease_until=None,
            started_at=func.coalesce(Fractal.started_at, now),
            duration=bindparam("b_duration"),
            size=bindparam("b_size"),
            checksum=bindparam("b_checksum"),
            generated_by=bindparam("b_generated_by"),
            c_real=func.coalesce(Fractal.c_real, bindparam("b_c_real", type_=Double)),
            c_imag=func.coalesce(Fractal.c_imag, bindparam("b_c_imag", type_=Double)),
            thumbnail=bindparam("b_thumbnail", type_=LargeBinary),
        )
        .execution_options(synchronize_session=False)
    )

    def params(r: Result) -> dict:
        return {
            "b_uuid": r.uuid,
            "b_duration": r.duration,
            "b_size": len(r.png),
            "b_checksum": r.checksum,
            "b_generated_by": r.generated_by,
            "b_c_real": r.c_real,
            "b_c_imag": r.c_imag,
            "b_thumbnail": r.thumbnail,
        }

    flipped = session.connection().execute(statement, [params(r) for r in todo]).rowcount
    if flipped != len(todo):
        # Lost a race with a concurrent delivery: undo and redo one row at a time.
        raise ConcurrentDelivery
    for r in todo:
        outcome[r.uuid] = "stored"
    # Bands of an assembled image are no longer needed.
    session.execute(delete(BandChunk).where(BandChunk.fractal_uuid.in_([r.uuid for r in todo])))
    session.execute(delete(Band).where(Band.fractal_uuid.in_([r.uuid for r in todo])))
    session.execute(
        insert(ImageChunk),
        [
            {"fractal_uuid": r.uuid, "seq": seq, "data": r.png[start : start + CHUNK_SIZE]}
            for r in todo
            for seq, start in enumerate(range(0, max(len(r.png), 1), CHUNK_SIZE))
        ],
    )
    return outcome


class ConcurrentDelivery(Exception):
    """A concurrent delivery stored one of the batch first; the transaction is retried."""


def image_chunk_numbers(session: Session, uuid: str) -> list[int]:
    return list(
        session.scalars(
            select(ImageChunk.seq).where(ImageChunk.fractal_uuid == uuid).order_by(ImageChunk.seq)
        )
    )


def image_chunk(session: Session, uuid: str, seq: int) -> bytes:
    """One part of the stored PNG, so a download never holds the whole file."""
    return (
        session.scalar(
            select(ImageChunk.data).where(ImageChunk.fractal_uuid == uuid, ImageChunk.seq == seq)
        )
        or b""
    )


def image_bytes(session: Session, uuid: str) -> bytes:
    return b"".join(image_chunk(session, uuid, seq) for seq in image_chunk_numbers(session, uuid))


def thumbnail(session: Session, uuid: str) -> bytes | None:
    return session.scalar(select(Fractal.thumbnail).where(Fractal.uuid == uuid))


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def to_publish(
    session: Session, now: datetime, grace: timedelta, limit: int, *, queue_empty: bool
) -> list[Fractal]:
    """Queued tasks that may have no message on the queue.

    Those whose publish was never confirmed (the API died between commit and
    publish, or the broker refused) are due after ``grace``. When the queue is
    empty, queued tasks published longer ago than ``grace`` have lost their
    message too (a broker that lost its data): they are due as well.
    """
    due = Fractal.published_at.is_(None) & (Fractal.created_at < now - grace)
    if queue_empty:
        due = due | (Fractal.published_at < now - grace)
    query = select(Fractal).where(Fractal.status == QUEUED, due).order_by(Fractal.created_at)
    return list(session.scalars(query.limit(limit)))


def requeue_expired(session: Session, now: datetime) -> int:
    """Running tasks whose worker stopped renewing its lease go back to queued, unpublished.

    The worker died or was cut off; if it comes back and delivers, its result
    is still taken once (results are accepted from any unfinished state).
    """
    return session.execute(
        update(Fractal)
        .where(Fractal.status == RUNNING, Fractal.lease_until < now)
        .values(
            status=QUEUED,
            published_at=None,
            lease_until=None,
            worker=None,
            assembly_published_at=None,
        )
    ).rowcount


def backlog(session: Session) -> tuple[int, int]:
    """Unfinished tasks and their cost in pixel-iterations (for autoscaling)."""
    n, cost = session.execute(
        select(
            func.count(),
            func.coalesce(func.sum(Fractal.width * Fractal.height * Fractal.iterations), 0),
        ).where(or_(Fractal.status == QUEUED, Fractal.status == RUNNING))
    ).one()
    return int(n), int(cost)
