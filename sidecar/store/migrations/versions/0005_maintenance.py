"""maintenance windows: the API's windows, and whether a window holds each job now

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03 10:00:00

Existing jobs get false (a server default, so the NOT NULL column can be added to a populated
table on SQLite and PostgreSQL alike).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "maintenance",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("jobs", sa.JSON(), nullable=True),
        sa.Column("match", sa.JSON(), nullable=True),
        sa.Column("starts_at", sa.Float(), nullable=False),
        sa.Column("ends_at", sa.Float(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("ended_at", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_maintenance_ends_at", "maintenance", ["ends_at"], unique=False)
    # Plain ADD COLUMN on both dialects (a batch of `jobs` on SQLite would drop the table its
    # runs cascade from).
    op.add_column(
        "jobs", sa.Column("in_maintenance", sa.Boolean(), nullable=False, server_default="0")
    )


def downgrade() -> None:
    op.drop_column("jobs", "in_maintenance")
    op.drop_index("ix_maintenance_ends_at", table_name="maintenance")
    op.drop_table("maintenance")
