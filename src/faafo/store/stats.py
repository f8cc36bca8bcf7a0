"""Read-only queries behind the live views: gallery pages, counters and ``/v1/stats``.

The gallery lists fractals newest first in the store's total order
``(created_at, uuid)``, which the index ``ix_fractals_created`` (and
``ix_fractals_status_created`` under a status filter) serves directly, so a
page costs an index range scan, not a sort of the whole table.

Pages are *anchored*: page N is counted from a fixed newest row (the anchor),
not from whatever is newest right now. Tasks keep arriving while a person
pages through the gallery; without an anchor every new task would push each
page's rows one place down and "older" would show rows already seen.
"""

from __future__ import annotations

import uuid as uuidlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import Select, and_, case, func, or_, select
from sqlalchemy.orm import Session

from faafo.store.models import DONE, FAILED, QUEUED, RUNNING, STATUSES, Fractal

# -- gallery pages ------------------------------------------------------------


@dataclass(frozen=True)
class Anchor:
    """A row's place in the gallery order; pages count from here towards older rows."""

    created_at: datetime
    uuid: str

    def encode(self) -> str:
        """URL-safe text: ``2026-11-25T04:40:13.123456_<uuid>``."""
        return f"{self.created_at.isoformat(timespec='microseconds')}_{self.uuid}"

    @classmethod
    def decode(cls, text: str | None) -> Anchor | None:
        """The anchor in ``text``, or None when absent or malformed (then: newest)."""
        if not text or "_" not in text:
            return None
        when, _, uuid = text.partition("_")
        try:
            return cls(datetime.fromisoformat(when).replace(tzinfo=None), str(uuidlib.UUID(uuid)))
        except ValueError:
            return None


@dataclass(frozen=True)
class GalleryFilters:
    """What the gallery's filter form selects: a status and the worker that made it."""

    status: str | None = None
    worker: str | None = None

    def apply(self, query: Select) -> Select:
        if self.status:
            query = query.where(Fractal.status == self.status)
        if self.worker:
            # Finished rows name their maker in generated_by; running and failed
            # ones only in worker (the claimant).
            query = query.where(
                or_(Fractal.generated_by == self.worker, Fractal.worker == self.worker)
            )
        return query


def _at_or_older(anchor: Anchor | None) -> list:
    if anchor is None:
        return []
    # The first term is a plain range on the index; the second breaks ties.
    return [
        Fractal.created_at <= anchor.created_at,
        or_(Fractal.created_at < anchor.created_at, Fractal.uuid <= anchor.uuid),
    ]


def newest(session: Session, filters: GalleryFilters) -> Anchor | None:
    """The anchor of the newest row the filters select (None when there is none)."""
    query = filters.apply(select(Fractal.created_at, Fractal.uuid))
    row = session.execute(
        query.order_by(Fractal.created_at.desc(), Fractal.uuid.desc()).limit(1)
    ).first()
    return Anchor(row[0], row[1]) if row else None


def count_from(session: Session, filters: GalleryFilters, anchor: Anchor | None) -> int:
    """How many rows the filters select at or older than ``anchor``."""
    query = filters.apply(select(func.count()).select_from(Fractal)).where(*_at_or_older(anchor))
    return int(session.scalar(query) or 0)


def count_newer(session: Session, filters: GalleryFilters, anchor: Anchor) -> int:
    """Rows that arrived (for these filters) after ``anchor``: "N newer" notices."""
    newer = or_(
        Fractal.created_at > anchor.created_at,
        and_(Fractal.created_at == anchor.created_at, Fractal.uuid > anchor.uuid),
    )
    query = filters.apply(select(func.count()).select_from(Fractal)).where(
        Fractal.created_at >= anchor.created_at, newer
    )
    return int(session.scalar(query) or 0)


def page_from(
    session: Session,
    filters: GalleryFilters,
    anchor: Anchor | None,
    page_number: int,
    per_page: int,
) -> list[Fractal]:
    """Page ``page_number`` (1 = newest) of the rows at or older than ``anchor``."""
    query = (
        filters.apply(select(Fractal))
        .where(*_at_or_older(anchor))
        .order_by(Fractal.created_at.desc(), Fractal.uuid.desc())
        .offset((page_number - 1) * per_page)
        .limit(per_page)
    )
    return list(session.scalars(query))


# -- counters and workers -------------------------------------------------------


def status_counts(session: Session) -> dict[str, int]:
    """Every status with its count, zeros included, so clients need no defaults."""
    query = select(Fractal.status, func.count()).group_by(Fractal.status)
    found = {status: n for status, n in session.execute(query)}
    return {status: int(found.get(status, 0)) for status in STATUSES}


def backlog(session: Session) -> tuple[int, int]:
    """Queued and running tasks, and their cost in pixel-iterations."""
    n, cost = session.execute(
        select(
            func.count(),
            func.coalesce(func.sum(Fractal.width * Fractal.height * Fractal.iterations), 0),
        ).where(Fractal.status.in_((QUEUED, RUNNING)))
    ).one()
    return int(n), int(cost)


@dataclass(frozen=True)
class Throughput:
    """Tasks that ended within the last ``window``, and the pixels they made."""

    window: timedelta
    done: int
    failed: int
    pixels: int


def throughput(session: Session, now: datetime, window: timedelta) -> Throughput:
    since = now - window
    done, failed, pixels = session.execute(
        select(
            func.coalesce(func.sum(case((Fractal.status == DONE, 1), else_=0)), 0),
            func.coalesce(func.sum(case((Fractal.status == FAILED, 1), else_=0)), 0),
            func.coalesce(
                func.sum(case((Fractal.status == DONE, Fractal.width * Fractal.height), else_=0)),
                0,
            ),
        ).where(Fractal.finished_at >= since, Fractal.status.in_((DONE, FAILED)))
    ).one()
    return Throughput(window, int(done), int(failed), int(pixels))


@dataclass(frozen=True)
class RecentTask:
    uuid: str
    status: str
    started_at: datetime | None
    finished_at: datetime | None
    duration: float | None


@dataclass
class WorkerActivity:
    """One worker as the database saw it: its tasks, and when it last did anything."""

    name: str
    running: int = 0
    done: int = 0
    failed: int = 0
    done_recently: int = 0
    last_seen: datetime | None = None
    recent: list[RecentTask] = field(default_factory=list)


def _latest(*moments: datetime | None) -> datetime | None:
    present = [m for m in moments if m is not None]
    return max(present) if present else None


def workers(
    session: Session,
    now: datetime,
    *,
    lease: timedelta,
    window: timedelta,
    recent_per_worker: int = 5,
    limit: int = 50,
) -> list[WorkerActivity]:
    """Per worker: running now, done and failed in all, done within ``window``, last seen.

    Workers are not registered anywhere; they are known by the tasks they
    claimed (``worker``) or delivered (``generated_by``). "Last seen" is the
    latest claim, delivery or lease renewal: a renewal sets ``lease_until``
    to ``renewed_at + lease``, so ``lease_until - lease`` is when the worker
    last spoke while rendering one long task. Most recently seen first.
    """
    name = func.coalesce(Fractal.worker, Fractal.generated_by)
    done_recently = and_(Fractal.status == DONE, Fractal.finished_at >= now - window)
    rows = session.execute(
        select(
            name,
            func.sum(case((Fractal.status == RUNNING, 1), else_=0)),
            func.sum(case((Fractal.status == DONE, 1), else_=0)),
            func.sum(case((Fractal.status == FAILED, 1), else_=0)),
            func.sum(case((done_recently, 1), else_=0)),
            func.max(Fractal.started_at),
            func.max(Fractal.finished_at),
            func.max(Fractal.lease_until),
        )
        .where(name.is_not(None))
        .group_by(name)
    ).all()
    found = [
        WorkerActivity(
            name=row[0],
            running=int(row[1] or 0),
            done=int(row[2] or 0),
            failed=int(row[3] or 0),
            done_recently=int(row[4] or 0),
            last_seen=_latest(row[5], row[6], row[7] - lease if row[7] is not None else None),
        )
        for row in rows
    ]
    found.sort(key=lambda w: (w.last_seen or datetime.min, w.name), reverse=True)
    found = found[:limit]
    _attach_recent(session, found, recent_per_worker)
    return found


def _attach_recent(session: Session, found: Sequence[WorkerActivity], per_worker: int) -> None:
    """Each worker's latest tasks, in one query ranking every worker's tasks by activity."""
    if per_worker <= 0 or not found:
        return
    name = func.coalesce(Fractal.worker, Fractal.generated_by)
    activity = func.coalesce(Fractal.finished_at, Fractal.started_at)
    ranked = (
        select(
            name.label("name"),
            Fractal.uuid,
            Fractal.status,
            Fractal.started_at,
            Fractal.finished_at,
            Fractal.duration,
            func.row_number()
            .over(partition_by=name, order_by=(activity.desc(), Fractal.uuid.desc()))
            .label("rank"),
        )
        .where(name.in_([w.name for w in found]), activity.is_not(None))
        .subquery()
    )
    query = select(
        ranked.c.name,
        ranked.c.uuid,
        ranked.c.status,
        ranked.c.started_at,
        ranked.c.finished_at,
        ranked.c.duration,
    ).where(ranked.c.rank <= per_worker).order_by(ranked.c.name, ranked.c.rank)
    by_name = {w.name: w for w in found}
    for row in session.execute(query):
        by_name[row[0]].recent.append(RecentTask(*row[1:]))
