"""job dependencies: the after: index, the ticks a dependent waits on, a skipped slot's upstream

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03 10:00:00

- ``job_upstreams``: one row per ``after:`` entry, indexed by the upstream's name.
- ``jobs.ticks``: the upstream ticks a job with ``after:`` and no schedule is waiting on, due
  for, or was skipped for (JSON; none for every other job).
- ``slots.upstream``: the job named by a slot skipped for reason ``upstream``.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "job_upstreams",
        sa.Column("job_id", sa.Integer(), nullable=False),
        sa.Column("upstream", sa.String(length=128), nullable=False),
        sa.ForeignKeyConstraint(["job_id"], ["jobs.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("job_id", "upstream"),
    )
    op.create_index(op.f("ix_job_upstreams_upstream"), "job_upstreams", ["upstream"], unique=False)
    # Plain ADD COLUMN (nullable) on both dialects: a batch of `jobs` on SQLite would drop the
    # table its runs cascade from.
    op.add_column("jobs", sa.Column("ticks", sa.JSON(), nullable=True))
    op.add_column("slots", sa.Column("upstream", sa.String(length=128), nullable=True))


def downgrade() -> None:
    op.drop_column("slots", "upstream")
    op.drop_column("jobs", "ticks")
    op.drop_index(op.f("ix_job_upstreams_upstream"), table_name="job_upstreams")
    op.drop_table("job_upstreams")
