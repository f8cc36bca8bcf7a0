"""Bands: a huge task split into row bands that several workers render.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

Timestamp = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")
Blob = sa.LargeBinary().with_variant(mysql.LONGBLOB(), "mysql", "mariadb")


def upgrade() -> None:
    with op.batch_alter_table("fractals") as batch:
        batch.add_column(sa.Column("band_count", sa.Integer, nullable=False, server_default="0"))
        batch.add_column(sa.Column("assembly_published_at", Timestamp, nullable=True))
    op.create_table(
        "bands",
        sa.Column(
            "fractal_uuid",
            sa.String(36),
            sa.ForeignKey("fractals.uuid", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("idx", sa.Integer, primary_key=True),
        sa.Column("y0", sa.Integer, nullable=False),
        sa.Column("y1", sa.Integer, nullable=False),
        sa.Column("stored", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("worker", sa.String(255), nullable=True),
        sa.Column("duration", sa.Double, nullable=True),
        sa.Column("size", sa.BigInteger, nullable=True),
    )
    op.create_table(
        "band_chunks",
        sa.Column("fractal_uuid", sa.String(36), primary_key=True),
        sa.Column("idx", sa.Integer, primary_key=True),
        sa.Column("seq", sa.Integer, primary_key=True),
        sa.Column("data", Blob, nullable=False),
        sa.ForeignKeyConstraint(
            ["fractal_uuid", "idx"], ["bands.fractal_uuid", "bands.idx"], ondelete="CASCADE"
        ),
    )


def downgrade() -> None:
    op.drop_table("band_chunks")
    op.drop_table("bands")
    with op.batch_alter_table("fractals") as batch:
        batch.drop_column("assembly_published_at")
        batch.drop_column("band_count")
