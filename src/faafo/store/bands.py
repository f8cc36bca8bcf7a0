"""Queries for banded (tiled) fractals: split, claim a band, store it, read it back.

Claiming and storing a band first lock the fractal's row (``SELECT ... FOR
UPDATE``; on SQLite the write lock taken at BEGIN serialises writers already),
and always in the same order, fractal row then band rows, so two deliveries of
the last two bands cannot both miss that the image is complete, and a claim
and a store on the same fractal cannot deadlock.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.orm import Session

from faafo.store.fractals import Claim, fail
from faafo.store.models import (
    CHUNK_SIZE,
    RUNNING,
    UNFINISHED,
    Band,
    BandChunk,
    Fractal,
)


def split(session: Session, uuid: str, bands: Sequence[tuple[int, int]]) -> None:
    """Record the bands of a new task (in the transaction that creates it)."""
    session.execute(
        insert(Band),
        [
            {"fractal_uuid": uuid, "idx": i, "y0": y0, "y1": y1, "stored": False, "attempts": 0}
            for i, (y0, y1) in enumerate(bands)
        ],
    )
    session.execute(update(Fractal).where(Fractal.uuid == uuid).values(band_count=len(bands)))


def of(session: Session, uuid: str) -> list[Band]:
    return list(session.scalars(select(Band).where(Band.fractal_uuid == uuid).order_by(Band.idx)))


def missing(session: Session, uuid: str) -> list[Band]:
    return [b for b in of(session, uuid) if not b.stored]


def claim_band(
    session: Session,
    uuid: str,
    index: int,
    worker: str,
    now: datetime,
    lease: timedelta,
    max_attempts: int,
) -> Claim:
    """Claim one band: the fractal turns running; a band tried too often fails the fractal."""
    status = _lock_fractal(session, uuid)
    if status is None:
        return Claim(uuid, False, "unknown fractal (deleted?)")
    if status not in UNFINISHED:
        return Claim(uuid, False, f"already {status}")
    band = session.get(Band, (uuid, index))
    if band is None:
        return Claim(uuid, False, "unknown band")
    if band.stored:
        return Claim(uuid, False, "band already stored")
    band.attempts += 1
    band.worker = worker
    if band.attempts > max_attempts:
        fail(session, [uuid], f"band {index} gave up after {max_attempts} attempts", now)
        return Claim(uuid, False, "too many attempts")
    session.execute(
        update(Fractal)
        .where(Fractal.uuid == uuid, Fractal.status.in_(UNFINISHED))
        .values(
            status=RUNNING,
            started_at=func.coalesce(Fractal.started_at, now),
            lease_until=now + lease,
            worker=worker,
        )
    )
    return Claim(uuid, True, attempt=band.attempts)


def store_band(
    session: Session, uuid: str, index: int, png: bytes, duration: float, worker: str
) -> tuple[str, bool]:
    """Store a band once; returns (outcome, whether every band is now stored).

    Exactly one of the deliveries that complete a fractal answers True, even when
    they run at the same moment on several API processes: the fractal row stays
    locked until the transaction ends, so the second one counts after the first
    has committed.
    """
    status = _lock_fractal(session, uuid)
    if status is None:
        return "unknown", False
    if status not in UNFINISHED:
        return "duplicate", False
    flipped = session.execute(
        update(Band)
        .where(Band.fractal_uuid == uuid, Band.idx == index, Band.stored.is_(False))
        .values(stored=True, duration=duration, size=len(png), worker=worker)
    ).rowcount
    if not flipped:
        exists = session.get(Band, (uuid, index)) is not None
        return ("duplicate" if exists else "unknown"), False
    session.execute(
        insert(BandChunk),
        [
            {
                "fractal_uuid": uuid,
                "idx": index,
                "seq": seq,
                "data": png[start : start + CHUNK_SIZE],
            }
            for seq, start in enumerate(range(0, max(len(png), 1), CHUNK_SIZE))
        ],
    )
    # A locking read sees the latest committed rows under any isolation level
    # (MariaDB's REPEATABLE READ would otherwise count from an older snapshot).
    remaining = session.scalars(
        select(Band.idx).where(Band.fractal_uuid == uuid, Band.stored.is_(False)).with_for_update()
    ).all()
    return "stored", not remaining


def _lock_fractal(session: Session, uuid: str) -> str | None:
    """The fractal's status, its row locked until the transaction ends (None: unknown)."""
    return session.scalar(select(Fractal.status).where(Fractal.uuid == uuid).with_for_update())


def band_size(session: Session, uuid: str, index: int) -> tuple[int, int] | None:
    """Width and height of the PNG of band ``index`` (None: no such band)."""
    found = session.execute(
        select(Fractal.width, Band.y0, Band.y1)
        .join(Band, Band.fractal_uuid == Fractal.uuid)
        .where(Fractal.uuid == uuid, Band.idx == index)
    ).first()
    return None if found is None else (found.width, found.y1 - found.y0)


def band_png(session: Session, uuid: str, index: int) -> bytes | None:
    rows = session.scalars(
        select(BandChunk.data)
        .where(BandChunk.fractal_uuid == uuid, BandChunk.idx == index)
        .order_by(BandChunk.seq)
    ).all()
    return b"".join(rows) if rows else None


def mark_assembly_published(session: Session, uuid: str, now: datetime) -> bool:
    """Only one caller wins the right to publish the assembly."""
    return (
        session.execute(
            update(Fractal)
            .where(
                Fractal.uuid == uuid,
                Fractal.assembly_published_at.is_(None),
                Fractal.status.in_(UNFINISHED),
            )
            .values(assembly_published_at=now)
        ).rowcount
        > 0
    )


def unmark_assembly_published(session: Session, uuid: str) -> None:
    """The assembly message could not be published: let the reconciler try again."""
    session.execute(
        update(Fractal)
        .where(Fractal.uuid == uuid, Fractal.status.in_(UNFINISHED))
        .values(assembly_published_at=None)
    )


def unassembled(session: Session, limit: int) -> list[str]:
    """Running banded fractals with every band stored and no assembly published.

    store_band commits before the API publishes the assembly; an API that dies in
    between (or a publish that fails) leaves the fractal here until the
    reconciler publishes it, instead of waiting for its lease to expire. (A
    queued one is the business of the reconciler's other rules: its message is
    either on the queue or due to be published.)
    """
    unstored = (
        select(Band.idx).where(Band.fractal_uuid == Fractal.uuid, Band.stored.is_(False)).exists()
    )
    query = (
        select(Fractal.uuid)
        .where(
            Fractal.band_count > 0,
            Fractal.status == RUNNING,
            Fractal.assembly_published_at.is_(None),
            ~unstored,
        )
        .order_by(Fractal.created_at)
        .limit(limit)
    )
    return list(session.scalars(query))


def mark_assembly_sent(session: Session, uuids: Sequence[str], now: datetime) -> None:
    """Assembly messages went out with a (re)publish of queued tasks: not again."""
    if uuids:
        session.execute(
            update(Fractal)
            .where(Fractal.uuid.in_(list(uuids)), Fractal.status.in_(UNFINISHED))
            .values(assembly_published_at=now)
        )


def forget(session: Session, uuid: str) -> None:
    """Drop the bands once the assembled image is stored."""
    session.execute(delete(BandChunk).where(BandChunk.fractal_uuid == uuid))
    session.execute(delete(Band).where(Band.fractal_uuid == uuid))
