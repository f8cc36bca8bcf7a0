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
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import Select, and_, func, or_, select, union
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
        """Add the filters as conditions that an index can answer.

        Finished rows name their maker in ``generated_by`` (indexed, and set
        only when a result is stored, so it implies ``done``); running and
        failed rows name only their claimant in ``worker``, reached through
        the status index. Writing "done by W" as ``generated_by = W`` alone
        keeps the database from walking every done row instead.
        """
        made = Fractal.generated_by == self.worker
        holds = Fractal.worker == self.worker
        if self.worker and self.status == DONE:
            return query.where(made)
        if self.status:
            query = query.where(Fractal.status == self.status)
        if self.worker and self.status:
            return query.where(holds)
        if self.worker:
            return query.where(or_(made, and_(Fractal.status.in_((RUNNING, FAILED)), holds)))
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
    row = session.execute(_newest_keys(filters, None, 0, 1)).first()
    return Anchor(row[0], row[1]) if row else None


def _newest_keys(
    filters: GalleryFilters, anchor: Anchor | None, skip: int, limit: int
) -> Select:
    """``(created_at, uuid)`` of the rows the filters select at or older than ``anchor``,
    newest first, ``limit`` of them after the first ``skip``.

    A worker without a status ("made or held by W") is an OR that no one index
    orders: the database would gather every row of W's and sort them all for
    one page. As two parts that each follow an index in order and stop after
    ``skip + limit`` rows, it reads about a page's worth.
    """
    within = _at_or_older(anchor)
    columns = (Fractal.created_at, Fractal.uuid)
    if not (filters.worker and not filters.status):
        query = filters.apply(select(*columns)).where(*within).order_by(*_NEWEST_FIRST)
        return query.offset(skip).limit(limit)
    enough = skip + limit
    made = select(*columns).where(Fractal.generated_by == filters.worker, *within)
    held = select(*columns).where(
        Fractal.status.in_((RUNNING, FAILED)), Fractal.worker == filters.worker, *within
    )
    parts = [q.order_by(*_NEWEST_FIRST).limit(enough).subquery() for q in (made, held)]
    both = union(*(select(part.c.created_at, part.c.uuid) for part in parts)).subquery()
    return (
        select(both.c.created_at, both.c.uuid)
        .order_by(both.c.created_at.desc(), both.c.uuid.desc())
        .offset(skip)
        .limit(limit)
    )


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
    skip = (page_number - 1) * per_page
    if filters.worker:
        return _page_by_keys(session, filters, anchor, skip, per_page)
    return _page_by_seek(session, filters, anchor, skip, per_page)


_NEWEST_FIRST = (Fractal.created_at.desc(), Fractal.uuid.desc())


def _page_by_seek(
    session: Session, filters: GalleryFilters, anchor: Anchor | None, skip: int, per_page: int
) -> list[Fractal]:
    """When an index covers the filters (none, or status): seek, then read one page.

    A plain ``OFFSET`` in the order ``(created_at, uuid)`` makes the database
    read every skipped row (and MySQL sort every matching one) to order ties
    by uuid, as the status index does not end in uuid. Instead the creation
    times of the page's first and last rows come from the index alone, and
    only the rows between them are read and sorted.
    """
    within = _at_or_older(anchor)
    times = (
        filters.apply(select(Fractal.created_at)).where(*within).order_by(Fractal.created_at.desc())
    )
    first = session.scalar(times.offset(skip).limit(1))
    if first is None:
        return []
    last = session.scalar(times.offset(skip + per_page - 1).limit(1))
    newer = 0
    if skip:
        newer = (
            session.scalar(
                filters.apply(select(func.count()).select_from(Fractal)).where(
                    *within, Fractal.created_at > first
                )
            )
            or 0
        )
    between = [*within, Fractal.created_at <= first]
    if last is not None:
        between.append(Fractal.created_at >= last)
    query = filters.apply(select(Fractal)).where(*between).order_by(*_NEWEST_FIRST)
    # Rows created at the same moment as the page's first row, but sorted before it.
    return list(session.scalars(query.offset(skip - int(newer)).limit(per_page)))


def _page_by_keys(
    session: Session, filters: GalleryFilters, anchor: Anchor | None, skip: int, per_page: int
) -> list[Fractal]:
    """When the filters name a worker: the page's keys first (:func:`_newest_keys`),
    then only the page's rows loaded in full."""
    uuids = [uuid for _, uuid in session.execute(_newest_keys(filters, anchor, skip, per_page))]
    if not uuids:
        return []
    rows = {r.uuid: r for r in session.scalars(select(Fractal).where(Fractal.uuid.in_(uuids)))}
    return [rows[u] for u in uuids if u in rows]


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


@dataclass(frozen=True)
class _Sampled:
    """One recently active task, with the worker it belongs to."""

    worker: str | None
    task: RecentTask
    pixels: int
    renewed: datetime | None = None  # running tasks: the last lease renewal

    @property
    def activity(self) -> datetime:
        moments = (self.task.finished_at, self.renewed, self.task.started_at)
        return max((m for m in moments if m is not None), default=datetime.min)


_SAMPLE_COLUMNS = (
    Fractal.uuid,
    Fractal.status,
    Fractal.started_at,
    Fractal.finished_at,
    Fractal.duration,
    Fractal.width * Fractal.height,
)


def _latest_finished(
    session: Session, status: str, since: datetime, chunk: int, cap: int
) -> list[_Sampled]:
    """Finished tasks of ``status``, latest first, down to the first chunk older than ``since``.

    The queue is first in, first out, so the tasks that finished last are
    (nearly) the newest-created finished ones: walking the index on
    ``(status, created_at)`` from the newest end finds them without reading
    the rest of the table. The walk stops after a chunk that all finished
    before ``since`` (so the throughput count is complete) or at ``cap``.
    Chunks are ordered by ``created_at`` alone, which the index gives without
    any sort; ties at a chunk's end are read again and skipped.
    """
    owner = Fractal.generated_by if status == DONE else Fractal.worker
    base = select(owner, *_SAMPLE_COLUMNS, Fractal.created_at).where(Fractal.status == status)
    found: list[_Sampled] = []
    seen: set[str] = set()
    bound: datetime | None = None
    while len(found) < cap:
        query = base if bound is None else base.where(Fractal.created_at <= bound)
        rows = session.execute(query.order_by(Fractal.created_at.desc()).limit(chunk)).all()
        if rows and bound is not None and rows[-1][7] == bound:
            # One moment holds a whole chunk (a big batch request): take all of it.
            rows = session.execute(base.where(Fractal.created_at == bound)).all()
            bound_next = bound
            strict = True
        else:
            bound_next = rows[-1][7] if rows else None
            strict = False
        fresh = [row for row in rows if row[1] not in seen]
        seen.update(row[1] for row in fresh)
        found += [_Sampled(row[0], RecentTask(*row[1:6]), int(row[6] or 0)) for row in fresh]
        if len(rows) < chunk and not strict:
            break
        if all(row[4] is None or row[4] < since for row in fresh):
            break
        if strict:
            base = base.where(Fractal.created_at < bound_next)
            bound = None
        else:
            bound = bound_next
    return found


def _running(session: Session, lease: timedelta) -> list[_Sampled]:
    """Every running task (there are at most as many as worker slots)."""
    query = select(Fractal.worker, *_SAMPLE_COLUMNS, Fractal.lease_until).where(
        Fractal.status == RUNNING
    )
    return [
        _Sampled(
            row[0],
            RecentTask(*row[1:6]),
            int(row[6] or 0),
            renewed=row[7] - lease if row[7] is not None else None,
        )
        for row in session.execute(query)
    ]


@dataclass(frozen=True)
class Activity:
    """Throughput over the window and the per-worker picture, from one bounded sample."""

    throughput: Throughput
    workers: list[WorkerActivity]


def activity(
    session: Session,
    now: datetime,
    *,
    lease: timedelta,
    window: timedelta,
    recent_per_worker: int = 5,
    limit: int = 50,
    chunk: int = 256,
    cap: int = 20_000,
) -> Activity:
    """Throughput and, per worker: running now, done and failed in all, recent tasks, last seen.

    Workers are not registered anywhere; they are known by the tasks they
    delivered (``generated_by``), hold (``worker`` of running tasks) or
    failed. "Last seen" is the latest claim, delivery or lease renewal among
    the running tasks and the latest finished ones (a renewal sets
    ``lease_until`` to ``renewed_at + lease``, so a worker busy with one long
    render is still seen); it is None for a worker absent from that sample,
    one idle for longer than the latest ``chunk`` finished tasks took.

    Every query here is an index range or an index-only scan, so the cost
    follows the recent activity, not the size of the table.
    """
    since = now - window
    sample = _running(session, lease)
    for status in (DONE, FAILED):
        sample += _latest_finished(session, status, since, chunk, cap)

    ended = [s for s in sample if s.task.finished_at is not None and s.task.finished_at >= since]
    done_now = [s for s in ended if s.task.status == DONE]
    done_now_ids = {s.task.uuid for s in done_now}
    throughput = Throughput(
        window, len(done_now), len(ended) - len(done_now), sum(s.pixels for s in done_now)
    )

    by_name: dict[str, WorkerActivity] = {}

    def worker(name: str) -> WorkerActivity:
        return by_name.setdefault(name, WorkerActivity(name=name))

    # generated_by is set only when a result is stored: an index-only count of done tasks.
    for name, n in session.execute(
        select(Fractal.generated_by, func.count())
        .where(Fractal.generated_by.is_not(None))
        .group_by(Fractal.generated_by)
    ):
        worker(name).done = int(n)
    for name, n in session.execute(
        select(Fractal.worker, func.count())
        .where(Fractal.status == FAILED, Fractal.worker.is_not(None))
        .group_by(Fractal.worker)
    ):
        worker(name).failed = int(n)
    sample.sort(key=lambda s: (s.activity, s.task.uuid), reverse=True)
    for item in sample:
        if item.worker is None:
            continue
        found = worker(item.worker)
        if item.task.status == RUNNING:
            found.running += 1
        if item.task.uuid in done_now_ids:
            found.done_recently += 1
        found.last_seen = _latest(found.last_seen, item.activity)
        if len(found.recent) < recent_per_worker:
            found.recent.append(item.task)
    listed = sorted(
        by_name.values(), key=lambda w: (w.last_seen or datetime.min, w.name), reverse=True
    )
    return Activity(throughput, listed[:limit])


def _latest(*moments: datetime | None) -> datetime | None:
    present = [m for m in moments if m is not None]
    return max(present) if present else None
