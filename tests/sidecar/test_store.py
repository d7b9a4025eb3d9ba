"""The store on SQLite: readers never hold up the writer, and one sidecar serves a file."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from sqlalchemy import func, select

from jobpulse.instrumentation.errors import ConfigError
from jobpulse.instrumentation.wire import Event
from jobpulse.sidecar.domain.tables import Job, Run, new_row
from tests.sidecar.harness import T0, Harness


def test_an_open_read_transaction_does_not_block_ingest(tmp_path: Path) -> None:
    # A /metrics refresh over a large fleet reads for seconds; ingest must commit meanwhile
    # (a reader that took the write lock made writers wait, then fail after busy_timeout).
    h = Harness(f"sqlite:///{tmp_path}/s.db", "", start=T0)
    try:
        with h.sidecar.store.session() as reader:
            before = reader.scalar(select(func.count(Job.id)))  # the read transaction is open
            event = Event(type="success", job="nightly", run_id="r1", ts=T0)
            result = h.sidecar.appender.submit([event], at=T0).result(timeout=5)
            h.sidecar.apply_pending(T0)  # the applier's transaction commits too
            assert result.accepted == 1
            # The reader keeps its snapshot until it ends.
            assert reader.scalar(select(func.count(Job.id))) == before == 0
        with h.sidecar.store.session() as fresh:
            assert fresh.scalar(select(func.count(Job.id))) == 1
    finally:
        h.close()


def test_a_run_written_mid_transaction_is_one_object_and_keeps_its_later_changes(
    store_url: str,
) -> None:
    # New runs are inserted by the transaction itself, not by the ORM session: once written
    # (before any flush), a read that returns the row must hand back the object the engine
    # holds, and what the engine changes on it afterwards must still reach the store.
    h = Harness(store_url, "", start=T0)
    try:
        event = Event(type="success", job="nightly", run_id="r0", ts=T0)
        h.sidecar.appender.submit([event], at=T0).result(timeout=5)
        h.sidecar.apply_pending(T0)
        with h.sidecar.store.transaction() as tx:
            job = tx.job("nightly")
            assert job is not None
            values = {"job_id": job.id, "run_id": "r1", "started_at": T0 + 10}
            run = new_row(Run, {**values, "received_at": T0 + 10, "outcome": "running"})
            tx.add_run(run)
            tx.write_pending()  # writes the run (as the writer does at the end of an item)
            assert tx.runs_started_between(job.id, T0 + 5, T0 + 15) == [run]
            assert tx.running_runs(job.id) == [run]
            run.outcome = "success"
            run.finished_at = T0 + 20
        with h.sidecar.store.session() as session:
            rows = list(session.scalars(select(Run).where(Run.run_id == "r1")))
            assert [(r.outcome, r.finished_at, r.has_start, r.late) for r in rows] == [
                ("success", T0 + 20, False, False)
            ]
    finally:
        h.close()


def test_one_sidecar_serves_a_sqlite_file_at_a_time(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/s.db"
    first = Harness(url, "", start=T0)
    try:
        with pytest.raises(
            ConfigError, match=rf"another jobpulse sidecar \(process {os.getpid()}\)"
        ):
            Harness(url, "", start=T0)
        first.ping([Event(type="success", job="nightly", run_id="r1", ts=T0)])  # unharmed
    finally:
        first.close()
    again = Harness(url, "", start=T0)  # the lock went with the first one's stop
    try:
        assert [r.run_id for r in again.runs("nightly")] == ["r1"]
    finally:
        again.close()
