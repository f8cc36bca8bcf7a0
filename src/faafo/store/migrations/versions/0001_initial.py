"""Fractals with task state, and their images in chunks.

Revision ID: 0001
Revises:
Create Date: 2026-11-25
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

Timestamp = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")
Blob = sa.LargeBinary().with_variant(mysql.LONGBLOB(), "mysql", "mariadb")


def upgrade() -> None:
    op.create_table(
        "fractals",
        sa.Column("uuid", sa.String(36), primary_key=True),
        sa.Column("width", sa.Integer, nullable=False),
        sa.Column("height", sa.Integer, nullable=False),
        sa.Column("iterations", sa.Integer, nullable=False),
        sa.Column("xa", sa.Double, nullable=False),
        sa.Column("xb", sa.Double, nullable=False),
        sa.Column("ya", sa.Double, nullable=False),
        sa.Column("yb", sa.Double, nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("palette", sa.String(16), nullable=False),
        sa.Column("c_real", sa.Double, nullable=True),
        sa.Column("c_imag", sa.Double, nullable=True),
        sa.Column("seed", sa.BigInteger, nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("batch", sa.String(36), nullable=True),
        sa.Column("worker", sa.String(255), nullable=True),
        sa.Column("created_at", Timestamp, nullable=False),
        sa.Column("published_at", Timestamp, nullable=True),
        sa.Column("started_at", Timestamp, nullable=True),
        sa.Column("finished_at", Timestamp, nullable=True),
        sa.Column("lease_until", Timestamp, nullable=True),
        sa.Column("duration", sa.Double, nullable=True),
        sa.Column("size", sa.BigInteger, nullable=True),
        sa.Column("checksum", sa.String(64), nullable=True),
        sa.Column("generated_by", sa.String(255), nullable=True),
        sa.Column("url", sa.String(255), nullable=True),
        sa.Column("thumbnail", Blob, nullable=True),
    )
    op.create_index("ix_fractals_created", "fractals", ["created_at", "uuid"])
    op.create_index("ix_fractals_status_created", "fractals", ["status", "created_at"])
    op.create_index("ix_fractals_batch", "fractals", ["batch"])
    op.create_index("ix_fractals_generated_by", "fractals", ["generated_by"])
    op.create_index("ix_fractals_lease", "fractals", ["status", "lease_until"])
    op.create_table(
        "image_chunks",
        sa.Column(
            "fractal_uuid",
            sa.String(36),
            sa.ForeignKey("fractals.uuid", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("seq", sa.Integer, primary_key=True),
        sa.Column("data", Blob, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("image_chunks")
    op.drop_table("fractals")
