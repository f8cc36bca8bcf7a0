"""Idempotency keys for create requests; publish groups for the reconciler.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

Timestamp = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")
LongText = sa.Text().with_variant(mysql.LONGTEXT(), "mysql", "mariadb")


def upgrade() -> None:
    op.create_table(
        "idempotency_keys",
        sa.Column("key_hash", sa.String(64), primary_key=True),
        sa.Column("request_hash", sa.String(64), nullable=False),
        sa.Column("uuids", LongText, nullable=False),
        sa.Column("created_at", Timestamp, nullable=False),
    )
    op.create_index("ix_idempotency_keys_created_at", "idempotency_keys", ["created_at"])
    with op.batch_alter_table("fractals") as batch:
        batch.add_column(sa.Column("publish_group", sa.String(32), nullable=True))
    op.create_index("ix_fractals_status_published", "fractals", ["status", "published_at"])
    # Tasks queued before this revision: those published at the same instant went out
    # in one publish call; counting them as one message can only underestimate what
    # the queue should hold, so the reconciler never republishes them in a flood.
    fractals = sa.table(
        "fractals",
        sa.column("status", sa.String),
        sa.column("published_at", Timestamp),
        sa.column("publish_group", sa.String),
    )
    connection = op.get_bind()
    instants = connection.execute(
        sa.select(fractals.c.published_at)
        .where(fractals.c.status == "queued", fractals.c.published_at.is_not(None))
        .distinct()
    ).scalars()
    for number, instant in enumerate(list(instants)):
        connection.execute(
            sa.update(fractals)
            .where(fractals.c.status == "queued", fractals.c.published_at == instant)
            .values(publish_group=f"legacy-{number}")
        )


def downgrade() -> None:
    op.drop_index("ix_fractals_status_published", "fractals")
    with op.batch_alter_table("fractals") as batch:
        batch.drop_column("publish_group")
    op.drop_index("ix_idempotency_keys_created_at", "idempotency_keys")
    op.drop_table("idempotency_keys")
