"""Upgrades: a store populated at the first revision upgrades to head with its data intact
(SQLite and PostgreSQL), and `jobpulse migrate` run by two replicas at once on one fresh
PostgreSQL database succeeds in both (the advisory lock serialises them)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory

from jobpulse.sidecar.domain.tables import Base
from jobpulse.sidecar.store.database import Store
from jobpulse.sidecar.store.migrate import alembic_config, current_revision, head_revision, upgrade
from tests.sidecar.harness import T0, Harness

JOBPULSE = str(Path(sys.executable).parent / "jobpulse")
CONFIG = 'jobs:\n  - name: old-job\n    schedule: "*/5 * * * *"\n'


def first_revision() -> str:
    revisions = list(ScriptDirectory.from_config(alembic_config()).walk_revisions())
    return str(revisions[-1].revision)


def _filler(column: sa.Column[Any]) -> Any:
    kind = column.type.python_type
    return {int: 0, float: 0.0, bool: False, str: "x"}.get(kind)


def insert_row(conn: sa.Connection, table: str, **values: Any) -> None:
    """Insert with every NOT NULL column filled, whatever the schema of that revision."""
    reflected = sa.Table(table, sa.MetaData(), autoload_with=conn)
    row = {
        c.name: _filler(c)
        for c in reflected.columns
        if not c.nullable and not c.primary_key and c.server_default is None
    }
    row.update(values)
    conn.execute(reflected.insert().values(**row))


def populate_at_first_revision(url: str) -> None:
    store = Store(url)
    upgrade(store, first_revision())
    assert current_revision(store) == first_revision()
    with store.engine.begin() as conn:
        insert_row(
            conn,
            "jobs",
            id=1,
            name="old-job",
            in_file=True,
            file_fields={"schedule": "*/5 * * * *"},
            state="up",
            created_at=T0 - 3600,
            state_since=T0 - 3600,
            changed_at=T0 - 3600,
            cursor=T0 + 300,
            next_deadline=T0 + 330.001,
            runs_success=1,
            last_success_at=T0 - 290,
        )
        insert_row(
            conn,
            "runs",
            job_id=1,
            run_id="run-1",
            slot=T0 - 300,
            started_at=T0 - 300,
            finished_at=T0 - 290,
            outcome="success",
            duration=10.0,
            received_at=T0 - 290,
        )
        insert_row(
            conn,
            "slots",
            job_id=1,
            slot=T0 - 300,
            status="filled",
            run_id="run-1",
            count=1,
            recorded_at=T0 - 290,
        )
        insert_row(conn, "events", job_id=1, run_id="run-1", type="success", received_at=T0 - 290)
        insert_row(
            conn, "slots", job_id=1, slot=T0 - 600, status="missed", count=1, recorded_at=T0 - 560
        )
    store.dispose()


def test_populated_store_upgrades_to_head_with_data_intact(store_url: str) -> None:
    populate_at_first_revision(store_url)
    store = Store(store_url)
    store.migrate()
    assert current_revision(store) == head_revision()
    store.migrate()  # idempotent
    with store.engine.connect() as conn:
        # The upgraded schema is the models' (the unique keys in their column order too).
        assert compare_metadata(MigrationContext.configure(conn), Base.metadata) == []
        keys = {t: sa.inspect(conn).get_unique_constraints(t) for t in ("runs", "events", "inbox")}
        # The tables SQLite rebuilt for them kept their rows.
        events = conn.exec_driver_sql("SELECT job_id, run_id, type FROM events").all()
        assert [tuple(row) for row in events] == [(1, "run-1", "success")]
    assert {t: [uc["column_names"] for uc in found] for t, found in keys.items()} == {
        "runs": [["run_id", "job_id"]],
        "events": [["run_id", "job_id", "type", "key_ts"]],
        "inbox": [["run_id", "job", "type", "key_ts"]],
    }
    store.dispose()
    h = Harness(store_url, CONFIG, start=T0)
    try:
        job = h.job("old-job")
        assert (job.state, job.runs_success, job.last_success_at) == ("up", 1, T0 - 290)
        assert [(r.run_id, r.outcome, r.duration) for r in h.runs("old-job")] == [
            ("run-1", "success", 10.0)
        ]
        assert h.slots("old-job") == [(T0 - 600, "missed", None), (T0 - 300, "filled", "run-1")]
        # the upgraded store keeps working: the next slot is judged as usual
        h.move(T0 + 331)
        assert h.missed("old-job") == [T0 - 600, T0 + 300]
    finally:
        h.close()


def test_two_migrate_processes_at_once_on_fresh_postgresql(pg_url: str, tmp_path: Path) -> None:
    env = {**os.environ, "JOBPULSE_STORE_URL": pg_url}
    procs = [
        subprocess.Popen(
            [JOBPULSE, "migrate"],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=tmp_path,
        )
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=60)[0].decode() for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    assert all(f"store at revision {head_revision()}" in out for out in outputs)
    store = Store(pg_url)
    assert current_revision(store) == head_revision()
    with store.engine.connect() as conn:
        tables = set(sa.inspect(conn).get_table_names())
    store.dispose()
    assert {"jobs", "runs", "events", "slots", "flips", "rollups"} <= tables
