"""unique keys led by the run id

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-05 17:20:00

The unique keys of ``runs`` (job_id, run_id), ``events`` (job_id, run_id, type, key_ts) and
``inbox`` (job, run_id, type, key_ts) now lead with the run id. Their only reads look a key up
whole, which either order serves, but every write lands where the key's leading column puts
it: led by the job, one batch of a hundred jobs' events wrote a leaf of each index per job (an
append of pings dirtied ~45 pages of the inbox's key alone); led by run ids that a client makes
in order (``new_run_id``: a process's prefix and a counter), a batch's keys land on a page or
two. A job's runs keep ``ix_runs_job_started`` (job_id, started_at) for the reads by job.

SQLite cannot drop a table's own unique constraint: its tables are rebuilt (Alembic's batch
mode; the inbox's few waiting rows, and the runs and events of a grown store, are copied).

``ix_runs_running`` becomes (job_id, outcome) WHERE outcome = 'running'. With no statistics,
SQLite's planner weighed the partial index on (job_id) no better than ix_runs_job_started for
"a job's running runs", and took whichever index the schema listed last: a rebuild lists them
in any order, and reading every run of a batch's jobs cost a grown store's applier 99% of its
pace. Matching both of the query's terms, the partial index wins whatever the order.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | Sequence[str] | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# table: (constraint name at head, old columns, new columns)
KEYS = {
    "runs": ("uq_runs_key", ["job_id", "run_id"], ["run_id", "job_id"]),
    "events": (
        "uq_events_key",
        ["job_id", "run_id", "type", "key_ts"],
        ["run_id", "job_id", "type", "key_ts"],
    ),
    "inbox": (
        "uq_inbox_key",
        ["job", "run_id", "type", "key_ts"],
        ["run_id", "job", "type", "key_ts"],
    ),
}
# Names SQLite's unnamed unique constraints are given when batch mode reflects them.
CONVENTION = {"uq": "uq_%(table_name)s_%(column_0_N_name)s"}


def _rekey(table: str, name: str, old: list[str], new: list[str]) -> None:
    bind = op.get_bind()
    found = [
        uc
        for uc in sa.inspect(bind).get_unique_constraints(table)
        if list(uc["column_names"]) == old
    ]
    if len(found) != 1:
        raise RuntimeError(f"{table}: expected one unique key on {old}, found {found}")
    current = found[0]["name"]
    if bind.dialect.name == "sqlite":
        with op.batch_alter_table(
            table, recreate="always", naming_convention=CONVENTION
        ) as batch_op:
            # Unnamed (as 0001 made them), it has the name the convention gives it.
            named = CONVENTION["uq"] % {"table_name": table, "column_0_N_name": "_".join(old)}
            batch_op.drop_constraint(current or named, "unique")
            batch_op.create_unique_constraint(name, new)
    else:
        assert current is not None  # PostgreSQL names every constraint
        op.drop_constraint(current, table, type_="unique")
        op.create_unique_constraint(name, table, new)


RUNNING = sa.text("outcome = 'running'")


def _running_index(columns: list[str]) -> None:
    op.drop_index("ix_runs_running", table_name="runs")
    op.create_index(
        "ix_runs_running", "runs", columns, sqlite_where=RUNNING, postgresql_where=RUNNING
    )


def upgrade() -> None:
    for table, (name, old, new) in KEYS.items():
        _rekey(table, name, old, new)
    _running_index(["job_id", "outcome"])


def downgrade() -> None:
    _running_index(["job_id"])
    for table, (name, old, new) in KEYS.items():
        _rekey(table, name, new, old)
