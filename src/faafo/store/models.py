"""SQLAlchemy models: the database is the source of truth for every task.

Images are stored as a sequence of chunks in their own table rather than one
blob on the fractal row: MySQL/MariaDB refuse packets above
``max_allowed_packet`` (16 MiB by default) and the largest allowed image is
bigger than that; chunks also let the API stream a download without holding
the whole PNG in memory, and keep list queries from touching image bytes.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    Double,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
)
from sqlalchemy.dialects import mysql
from sqlalchemy.orm import DeclarativeBase, Mapped, deferred, mapped_column

# Microsecond timestamps everywhere (MySQL's DATETIME defaults to whole seconds,
# which would make "newest first" ambiguous within a batch).
Timestamp = DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")
Blob = LargeBinary().with_variant(mysql.LONGBLOB(), "mysql", "mariadb")
LongText = Text().with_variant(mysql.LONGTEXT(), "mysql", "mariadb")

CHUNK_SIZE = 1024 * 1024

QUEUED = "queued"
RUNNING = "running"
DONE = "done"
FAILED = "failed"
STATUSES = (QUEUED, RUNNING, DONE, FAILED)
UNFINISHED = (QUEUED, RUNNING)


class Base(DeclarativeBase):
    pass


class Fractal(Base):
    """One requested image: the original's fields, plus state, timings and ``c``."""

    __tablename__ = "fractals"

    uuid: Mapped[str] = mapped_column(String(36), primary_key=True)
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    iterations: Mapped[int] = mapped_column(Integer)
    xa: Mapped[float] = mapped_column(Double)
    xb: Mapped[float] = mapped_column(Double)
    ya: Mapped[float] = mapped_column(Double)
    yb: Mapped[float] = mapped_column(Double)
    kind: Mapped[str] = mapped_column(String(16), default="julia")
    palette: Mapped[str] = mapped_column(String(16), default="faafo")
    c_real: Mapped[float | None] = mapped_column(Double, nullable=True)
    c_imag: Mapped[float | None] = mapped_column(Double, nullable=True)
    seed: Mapped[int | None] = mapped_column(BigInteger, nullable=True)

    status: Mapped[str] = mapped_column(String(16), default=QUEUED)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    batch: Mapped[str | None] = mapped_column(String(36), nullable=True)
    worker: Mapped[str | None] = mapped_column(String(255), nullable=True)

    created_at: Mapped[datetime] = mapped_column(Timestamp)
    published_at: Mapped[datetime | None] = mapped_column(Timestamp, nullable=True)
    started_at: Mapped[datetime | None] = mapped_column(Timestamp, nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(Timestamp, nullable=True)
    lease_until: Mapped[datetime | None] = mapped_column(Timestamp, nullable=True)

    duration: Mapped[float | None] = mapped_column(Double, nullable=True)
    size: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    checksum: Mapped[str | None] = mapped_column(String(64), nullable=True)
    generated_by: Mapped[str | None] = mapped_column(String(255), nullable=True)
    url: Mapped[str | None] = mapped_column(String(255), nullable=True)
    thumbnail: Mapped[bytes | None] = deferred(mapped_column(Blob, nullable=True))
    band_count: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    assembly_published_at: Mapped[datetime | None] = mapped_column(Timestamp, nullable=True)
    # Tasks published in one (bundle) message share this id, so the reconciler can
    # tell how many messages the queued tasks need (see fractals.lost_messages).
    publish_group: Mapped[str | None] = mapped_column(String(32), nullable=True)

    __table_args__ = (
        Index("ix_fractals_created", "created_at", "uuid"),
        Index("ix_fractals_status_created", "status", "created_at"),
        Index("ix_fractals_batch", "batch"),
        Index("ix_fractals_generated_by", "generated_by"),
        Index("ix_fractals_lease", "status", "lease_until"),
        Index("ix_fractals_worker_created", "generated_by", "created_at"),
        Index("ix_fractals_status_finished", "status", "finished_at"),
        Index("ix_fractals_status_published", "status", "published_at"),
    )


class ImageChunk(Base):
    """Part ``seq`` of a fractal's PNG; concatenated in order they are the file."""

    __tablename__ = "image_chunks"

    fractal_uuid: Mapped[str] = mapped_column(
        String(36), ForeignKey("fractals.uuid", ondelete="CASCADE"), primary_key=True
    )
    seq: Mapped[int] = mapped_column(Integer, primary_key=True)
    data: Mapped[bytes] = mapped_column(Blob)


class Band(Base):
    """Rows ``y0..y1-1`` of a huge fractal, rendered by one worker as a PNG of its own.

    When every band is stored, one worker assembles them into the final PNG,
    so a 10000x10000 request uses every worker instead of pinning one.
    """

    __tablename__ = "bands"

    fractal_uuid: Mapped[str] = mapped_column(
        String(36), ForeignKey("fractals.uuid", ondelete="CASCADE"), primary_key=True
    )
    idx: Mapped[int] = mapped_column(Integer, primary_key=True)
    y0: Mapped[int] = mapped_column(Integer)
    y1: Mapped[int] = mapped_column(Integer)
    stored: Mapped[bool] = mapped_column(Boolean, default=False)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    worker: Mapped[str | None] = mapped_column(String(255), nullable=True)
    duration: Mapped[float | None] = mapped_column(Double, nullable=True)
    size: Mapped[int | None] = mapped_column(BigInteger, nullable=True)


class IdempotencyKey(Base):
    """A create request made with an ``Idempotency-Key`` header, and what it created.

    A retry carrying the same key and the same body is answered with the same
    tasks instead of a 409; the key is remembered for a day.
    """

    __tablename__ = "idempotency_keys"

    key_hash: Mapped[str] = mapped_column(String(64), primary_key=True)  # SHA-256 of the key
    request_hash: Mapped[str] = mapped_column(String(64))  # SHA-256 of the canonical body
    uuids: Mapped[str] = mapped_column(LongText)  # JSON list, in the request's order
    created_at: Mapped[datetime] = mapped_column(Timestamp, index=True)


class BandChunk(Base):
    __tablename__ = "band_chunks"

    fractal_uuid: Mapped[str] = mapped_column(String(36), primary_key=True)
    idx: Mapped[int] = mapped_column(Integer, primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, primary_key=True)
    data: Mapped[bytes] = mapped_column(Blob)

    __table_args__ = (
        ForeignKeyConstraint(
            ["fractal_uuid", "idx"], ["bands.fractal_uuid", "bands.idx"], ondelete="CASCADE"
        ),
    )
