"""Queries and state transitions on fractal records.

Every transition is a single conditional statement (``UPDATE ... WHERE status
IN (...)``) so that several API processes, a reconciler and redelivered
messages can race on the same task and still leave exactly one outcome.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TypeVar

from sqlalchemy import (
    ColumnElement,
    Double,
    LargeBinary,
    bindparam,
    case,
    delete,
    func,
    insert,
    or_,
    select,
    update,
)
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
_Item = TypeVar("_Item")


def utcnow() -> datetime:
    """Naive UTC: what every back end stores and returns alike."""
    return datetime.now(UTC).replace(tzinfo=None)


def _chunks(items: Sequence[_Item], size: int = _IN_CHUNK) -> Iterator[Sequence[_Item]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class DuplicateTask(Exception):
    def __init__(self, uuids: list[str]) -> None:
        super().__init__(f"fractal already exists: {', '.join(uuids[:5])}")
        self.uuids = uuids


def insert_tasks(session: Session, rows: list[dict], now: datetime) -> list[dict]:
    """Insert new queued tasks in one statement; returns the rows inserted.

    A uuid given twice, or one that exists already, is refused (:class:`DuplicateTask`)
    and nothing is inserted. A retried request is recognised by its
    ``Idempotency-Key`` instead (see ``faafo.store.idempotency``), never by
    comparing parameters. Two sessions inserting the same new uuid at once both
    pass the check; the second then fails on the primary key (IntegrityError),
    which the caller turns into the same DuplicateTask.
    """
    uuids = [row["uuid"] for row in rows]
    seen: set[str] = set()
    repeated = [u for u in uuids if u in seen or seen.add(u)]  # type: ignore[func-returns-value]
    if repeated:
        raise DuplicateTask(sorted(set(repeated)))
    existing = existing_uuids(session, uuids)
    if existing:
        raise DuplicateTask(existing)
    if rows:
        session.execute(
            insert(Fractal),
            [{**row, "status": QUEUED, "attempts": 0, "created_at": now} for row in rows],
        )
    return rows


def existing_uuids(session: Session, uuids: Sequence[str]) -> list[str]:
    """Which of ``uuids`` are stored (sorted), for conflict messages."""
    found: list[str] = []
    for part in _chunks(uuids):
        found += session.scalars(select(Fractal.uuid).where(Fractal.uuid.in_(part))).all()
    return sorted(found)


def mark_published(session: Session, groups: Mapping[str, str], now: datetime) -> None:
    """Record that each task (key) went out in the message ``groups[uuid]`` identifies.

    One statement per 500 tasks (a CASE picks each row's group), as cheap as
    marking them without groups.
    """
    uuids = list(groups)
    for part in _chunks(uuids):
        session.execute(
            update(Fractal)
            .where(Fractal.uuid.in_(part), Fractal.status == QUEUED)
            .values(
                published_at=now,
                publish_group=case({uuid: groups[uuid] for uuid in part}, value=Fractal.uuid),
            )
            .execution_options(synchronize_session=False)
        )


def dimensions(session: Session, uuids: Sequence[str]) -> dict[str, tuple[int, int]]:
    """Width and height of each stored task among ``uuids``."""
    return {
        uuid: (width, height)
        for part in _chunks(uuids)
        for uuid, width, height in session.execute(
            select(Fractal.uuid, Fractal.width, Fractal.height).where(Fractal.uuid.in_(part))
        )
    }


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


def release(session: Session, uuids: Sequence[str], worker: str) -> int:
    """Tasks ``worker`` claimed and gives back unfinished: queued again, attempt uncounted.

    A graceful give-back (the worker stops, or could not deliver) is no failure
    of the task, so it must not bring the task closer to ``max_attempts``; only
    a claim whose worker vanished (a crash) keeps counting. The message goes
    back to the queue, so ``published_at`` stays.
    """
    released = 0
    for part in _chunks(uuids):
        released += session.execute(
            update(Fractal)
            .where(
                Fractal.uuid.in_(part),
                Fractal.status == RUNNING,
                Fractal.worker == worker,
                Fractal.attempts > 0,
            )
            .values(status=QUEUED, worker=None, lease_until=None, attempts=Fractal.attempts - 1)
        ).rowcount
    return released


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


def thumbnail_size(session: Session, uuid: str) -> int:
    """Bytes of the stored thumbnail (0: none), without reading it."""
    return session.scalar(select(func.length(Fractal.thumbnail)).where(Fractal.uuid == uuid)) or 0


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def unpublished(session: Session, now: datetime, grace: timedelta, limit: int) -> list[Fractal]:
    """Queued tasks whose publish was never confirmed, ``grace`` after they were created.

    The API died between commit and publish, the broker refused, or a lease expired
    (``requeue_expired`` clears ``published_at``): they have no message at all.
    """
    query = select(Fractal).where(
        Fractal.status == QUEUED,
        Fractal.published_at.is_(None),
        Fractal.created_at < now - grace,
    )
    return list(session.scalars(query.order_by(Fractal.created_at).limit(limit)))


@dataclass(frozen=True, order=True)
class _Message:
    """One or more messages the queue should hold for queued tasks published together."""

    published_at: datetime
    kind: str  # "group" (a bundle message), "banded" (a task's bands), "legacy"
    key: str  # the publish_group, or the banded task's uuid
    count: int = 1  # messages: 1, or the missing bands of a banded task


def lost_messages(
    session: Session, now: datetime, grace: timedelta, ready: int, limit: int
) -> list[Fractal]:
    """Published, still queued tasks whose message the queue cannot be holding.

    How many: ``ready`` is the queue's count of ready messages, read just after
    ``now``. Every queued task that was published has its message among them (a
    worker that takes a message claims its tasks at once, turning them
    ``running``). Tasks published together share a ``publish_group`` (one bundle
    message); a banded task has one message per missing band (or one assembly
    message). So the tasks queued and published before ``now`` need ``needed``
    messages; if ``ready < needed``, at least ``needed - ready`` of them are
    gone, and no more than that many are published again: a long backlog that
    is merely waiting is never doubled. Stale messages in the queue (for tasks
    since done, deleted or republished) only make ``ready`` larger, so a loss
    may show later, at the latest when the queue drains, never wrongly.

    Which ones: the queue is first in, first out, and a worker claims what it
    takes. A queued task published more than ``grace`` before the latest
    published task that a worker has claimed (the queue's head, roughly) has
    been overtaken: its message should have been delivered first, so it is the
    one lost. Only overtaken tasks are candidates, oldest first, so a task
    waiting its turn at the head of a busy queue is not duplicated (the bundles
    of one request share one instant: among those the pick is arbitrary). When
    the queue is empty every published task is a candidate (nothing is ahead of
    them: e.g. a broker that lost all its messages and got no new work).
    A rare duplicate remains harmless: results are stored once.
    """
    published = (
        (Fractal.status == QUEUED)
        & Fractal.published_at.is_not(None)
        & (Fractal.published_at < now)
    )
    plain = published & (Fractal.band_count == 0)
    grouped = plain & Fractal.publish_group.is_not(None)
    legacy = plain & Fractal.publish_group.is_(None)  # published by an API before revision 0004
    groups = select(func.count(func.distinct(Fractal.publish_group))).where(grouped)
    instants = select(func.count(func.distinct(Fractal.published_at))).where(legacy)
    banded = session.execute(
        select(Fractal.uuid, Fractal.published_at).where(published & (Fractal.band_count > 0))
    ).all()
    missing = _missing_bands(session, [uuid for uuid, _ in banded])
    needed = (session.scalar(groups) or 0) + (session.scalar(instants) or 0)
    needed += sum(max(1, missing.get(uuid, 0)) for uuid, _ in banded)
    deficit = needed - ready
    if deficit <= 0:
        return []
    cut = now - grace
    if ready > 0:
        head = session.scalar(
            select(func.max(Fractal.published_at)).where(Fractal.status.in_((RUNNING, DONE)))
        )
        if head is None:
            return []
        cut = min(cut, head - grace)
    old = Fractal.published_at < cut
    candidates = [
        _Message(at, "group", group)
        for group, at in session.execute(
            select(Fractal.publish_group, func.min(Fractal.published_at))
            .where(grouped & old)
            .group_by(Fractal.publish_group)
        )
    ]
    candidates += [
        _Message(at, "legacy", "")
        for at in session.scalars(select(Fractal.published_at).where(legacy & old).distinct())
    ]
    candidates += [
        _Message(at, "banded", uuid, max(1, missing.get(uuid, 0)))
        for uuid, at in banded
        if at < cut
    ]
    chosen: list[_Message] = []
    for candidate in sorted(candidates):
        if deficit <= 0:
            break
        chosen.append(candidate)
        deficit -= candidate.count
    return _tasks_of(session, chosen, published, limit)


def _missing_bands(session: Session, uuids: Sequence[str]) -> dict[str, int]:
    return {
        uuid: n
        for part in _chunks(uuids)
        for uuid, n in session.execute(
            select(Band.fractal_uuid, func.count())
            .where(Band.fractal_uuid.in_(part), Band.stored.is_(False))
            .group_by(Band.fractal_uuid)
        )
    }


def _tasks_of(
    session: Session, messages: list[_Message], published: ColumnElement[bool], limit: int
) -> list[Fractal]:
    """The queued tasks the chosen messages carried, oldest first, at most ``limit``."""
    by_kind: dict[str, list] = {"group": [], "banded": [], "legacy": []}
    for m in messages:
        by_kind[m.kind].append(m.published_at if m.kind == "legacy" else m.key)
    selectors = {
        "group": Fractal.publish_group,
        "banded": Fractal.uuid,
        "legacy": Fractal.published_at,
    }
    rows: list[Fractal] = []
    for kind, keys in by_kind.items():
        # A legacy message names its tasks by publish time, which grouped tasks share.
        only = [Fractal.publish_group.is_(None)] if kind == "legacy" else []
        for part in _chunks(keys):
            query = select(Fractal).where(published, *only, selectors[kind].in_(part))
            rows += session.scalars(query).all()
    rows.sort(key=lambda row: (row.published_at, row.created_at, row.uuid))
    return rows[:limit]


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
