"""slow runs: the per-job counter jobpulse_job_slow_runs_total and the run's slow flag

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-03 08:50:00

Existing rows get 0 and false (a server default, so the NOT NULL columns can be added to
populated tables on SQLite and PostgreSQL alike).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Plain ADD COLUMN on both dialects: a batch (copy-and-move) of `jobs` on SQLite would drop
    # the table its runs cascade from.
    op.add_column("jobs", sa.Column("slow_total", sa.Integer(), nullable=False, server_default="0"))
    op.add_column("runs", sa.Column("slow", sa.Boolean(), nullable=False, server_default="0"))


def downgrade() -> None:
    op.drop_column("runs", "slow")
    op.drop_column("jobs", "slow_total")
