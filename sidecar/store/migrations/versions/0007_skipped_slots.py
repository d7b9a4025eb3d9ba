"""skipped slots: the per-job counter jobpulse_job_skipped_runs_total{reason}

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-04 10:10:00

- ``jobs.skipped_maintenance`` and ``jobs.skipped_upstream``: slots recorded ``skipped``, by
  reason. Existing rows get 0 (a server default, so the NOT NULL columns can be added to
  populated tables on SQLite and PostgreSQL alike); slots skipped before the upgrade are not
  counted.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Plain ADD COLUMN on both dialects: a batch (copy-and-move) of `jobs` on SQLite would drop
    # the table its runs cascade from.
    for column in ("skipped_maintenance", "skipped_upstream"):
        op.add_column("jobs", sa.Column(column, sa.Integer(), nullable=False, server_default="0"))


def downgrade() -> None:
    op.drop_column("jobs", "skipped_upstream")
    op.drop_column("jobs", "skipped_maintenance")
