"""Index for the gallery's per-worker pages and the stats' recent throughput.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25
"""

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_fractals_worker_created", "fractals", ["generated_by", "created_at"])
    op.create_index("ix_fractals_status_finished", "fractals", ["status", "finished_at"])


def downgrade() -> None:
    op.drop_index("ix_fractals_status_finished", "fractals")
    op.drop_index("ix_fractals_worker_created", "fractals")
