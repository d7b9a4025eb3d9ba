"""The store's transactions on SQLite: readers never hold up the writer, and the writer holds
up the inbox's appends only while it writes."""

from __future__ import annotations

import gc
import os
import threading
import time
from concurrent.futures import Future
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy import inspect as sa_inspect

from jobpulse.instrumentation.errors import ConfigError
from jobpulse.instrumentation.wire import Event
from jobpulse.sidecar import applying
from jobpulse.sidecar.applying import HOLD_LAG, HOLD_LAG_BESIDE
from jobpulse.sidecar.domain.tables import Job, Run, new_row
from jobpulse.sidecar.store.database import CHECKPOINT_PAGES, Store
from jobpulse.sidecar.store.inbox import APPLY_BATCH, INBOX, IngestResult
from jobpulse.sidecar.store.pairs import PairsQuery, pairs_args, pairs_sql
from jobpulse.sidecar.store.tx import Tx
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


def test_a_batch_lets_its_rows_go_when_it_commits(store_url: str) -> None:
    # The applier's transaction and its session refer to each other, so the cyclic collector
    # alone would free them, and batches that outlive a young collection would pile up until
    # a full one (the soak's RSS grew by 55 MB with 1,000-event batches). Once committed, the
    # runs a batch created and read must be freed at once, collector or not.
    h = Harness(store_url, "", start=T0)
    events = [Event(type="success", job=f"job-{i % 5}", run_id=f"r{i}", ts=T0) for i in range(300)]
    try:
        h.sidecar.appender.submit(events, at=T0).result(timeout=5)
        gc.collect()
        gc.disable()
        try:
            assert len(h.sidecar.applier.apply_pending(T0)) == 300
            alive = sum(1 for o in gc.get_objects() if isinstance(o, Run))
        finally:
            gc.enable()
        assert alive == 0
        assert len(h.runs("job-0")) == 60  # and all of them were written
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


def test_the_jobs_a_transaction_changed_are_written_by_it_and_clean_to_the_session(
    store_url: str,
) -> None:
    # The transaction writes the jobs it read and changed itself, one UPDATE per set of
    # changed columns, and marks them clean: the session's flush (per job, in Python) does not
    # write them again. Changes after that write reach the store at the next one.
    h = Harness(store_url, "", start=T0)
    try:
        events = [Event(type="success", job="nightly", run_id="r0", ts=T0, duration=2.0)]
        h.sidecar.appender.submit(events, at=T0).result(timeout=5)
        h.sidecar.apply_pending(T0)
        with h.sidecar.store.transaction() as tx:
            job = tx.job("nightly")
            assert job is not None
            job.runs_success += 1
            job.duration_buckets = [7] * len(job.duration_buckets or [])
            job.silent = True
            assert job in tx.session.dirty
            tx.write_pending()
            assert not tx.session.dirty
            job.runs_failure = 5  # after the write: written by the next one (the commit's)
        with h.sidecar.store.session() as session:
            stored = session.scalars(select(Job).where(Job.name == "nightly")).one()
            assert (stored.runs_success, stored.runs_failure, stored.silent) == (2, 5, True)
            assert set(stored.duration_buckets or []) == {7}
            assert stored.last_duration == 2.0  # the applier's own write of the job
    finally:
        h.close()


def _append(h: Harness, run_id: str) -> Future[IngestResult]:
    return h.sidecar.appender.submit([Event(type="success", job="nightly", run_id=run_id, ts=T0)])


def test_appends_commit_while_the_writer_reads_and_wait_once_it_writes(tmp_path: Path) -> None:
    # The applier works out a batch's effects before it writes them: appends must not wait for
    # that (they did, for the whole batch, while the writer held the write lock from BEGIN).
    h = Harness(f"sqlite:///{tmp_path}/s.db", "", start=T0)
    read, write, done = threading.Event(), threading.Event(), threading.Event()

    def work(tx: Tx) -> int:
        tx.session.scalar(select(func.count(Job.id)))
        # The readahead's lookups by pairs are WITH queries: reads too.
        runs = PairsQuery(
            names="job, run_id",
            columns="r.id",
            lookups=(
                ("jobs", "j", "j.name = k.job"),
                ("runs", "r", "r.job_id = j.id AND r.run_id = k.run_id"),
            ),
        )
        conn = tx.session.connection()
        conn.exec_driver_sql(pairs_sql(runs, 1), pairs_args([("nightly", "r0")])).all()
        read.set()
        assert write.wait(10)
        tx.session.add(Job(name="written", created_at=T0, state_since=T0, changed_at=T0))
        tx.session.flush()  # the first write: the write lock from here to the commit
        done.set()
        time.sleep(0.3)
        return 1

    try:
        item = h.sidecar.writer.submit(work)
        assert read.wait(10)
        assert _append(h, "r1").result(timeout=5).accepted == 1  # while the item reads
        write.set()
        assert done.wait(10)
        waiting = _append(h, "r2")
        time.sleep(0.1)
        assert not waiting.done()  # the item holds the lock until it commits
        assert item.result(10) == 1
        assert waiting.result(timeout=5).accepted == 1
        with h.sidecar.store.session() as s:
            assert s.scalar(select(func.count(Job.id)).where(Job.name == "written")) == 1
    finally:
        write.set()
        h.close()


def test_hold_writes_keeps_appends_out_from_the_start(tmp_path: Path) -> None:
    # The evaluator's pass reads the inbox and judges slots at `now`: no append may commit in
    # between, or a run that filled a slot would wait in the inbox while the slot is missed.
    h = Harness(f"sqlite:///{tmp_path}/s.db", "", start=T0)
    held, release = threading.Event(), threading.Event()

    def work(tx: Tx) -> None:
        tx.hold_writes()
        held.set()
        assert release.wait(10)

    try:
        item = h.sidecar.writer.submit(work)
        assert held.wait(10)
        waiting = _append(h, "r1")
        time.sleep(0.2)
        assert not waiting.done()
        release.set()
        item.result(10)
        assert waiting.result(timeout=5).accepted == 1
    finally:
        release.set()
        h.close()


def _free_elsewhere(lock: object) -> bool:
    """Whether another thread could take ``lock`` now."""
    free: list[bool] = []

    def probe() -> None:
        took = lock.acquire(blocking=False)  # type: ignore[attr-defined]
        if took:
            lock.release()  # type: ignore[attr-defined]
        free.append(took)

    t = threading.Thread(target=probe)
    t.start()
    t.join()
    return free[0]


@pytest.mark.parametrize(
    "hold_lag", [HOLD_LAG, HOLD_LAG_BESIDE], ids=["one-process", "applier-process"]
)
def test_a_batch_far_behind_holds_the_write_lock_from_its_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, hold_lag: float
) -> None:
    # Backpressure: appends commit while the applier works out a batch only as long as it keeps
    # up. Once its oldest event is hold_lag old, appends wait for the whole batch, so a
    # sustained overload slows ingest to the applier's pace instead of growing the backlog.
    h = Harness(f"sqlite:///{tmp_path}/s.db", "", start=T0)
    h.sidecar.applier.hold_lag = hold_lag
    engine = h.sidecar.engine
    prefetch = engine.prefetch
    free: list[bool] = []

    def watched(tx: Tx, events: list[Event]) -> None:
        free.append(_free_elsewhere(h.sidecar.store.write_lock))
        prefetch(tx, events)

    monkeypatch.setattr(engine, "prefetch", watched)
    try:
        _append(h, "r1").result(timeout=5)
        h.clock.set(T0 + hold_lag - 0.5)
        h.sidecar.apply_pending()
        _append(h, "r2").result(timeout=5)  # arrives now
        h.clock.set(T0 + 2 * hold_lag)  # and is hold_lag and a half old when applied
        h.sidecar.apply_pending()
        assert free == [True, False]
        assert [r.run_id for r in h.runs("nightly")] == ["r1", "r2"]
    finally:
        h.close()


def test_apply_pending_leaves_the_rest_once_its_patience_is_spent(tmp_path: Path) -> None:
    # Under a sustained overload the inbox never runs dry: the evaluator's pass must get to
    # judging (it then drains the rest holding appends back), not apply batches forever.
    h = Harness(f"sqlite:///{tmp_path}/s.db", "", start=T0)
    try:
        events = [
            Event(type="success", job="nightly", run_id=f"r{i}", ts=T0)
            for i in range(APPLY_BATCH + 10)
        ]
        h.sidecar.appender.submit(events).result(timeout=10)
        assert len(h.sidecar.applier.apply_pending(patience=0.0)) == APPLY_BATCH
        assert h.sidecar.update_inbox_metrics()[0] == 10
        assert len(h.sidecar.applier.apply_pending()) == 10
        assert h.sidecar.update_inbox_metrics()[0] == 0
    finally:
        h.close()


def test_a_pass_past_its_patience_judges_as_far_as_the_inbox_is_applied(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Under a sustained overload a pass applies for TICK_PATIENCE, then judges at the arrival
    # of the oldest event still waiting: every event before it is applied, so no slot is judged
    # without its run, and ingest is not held back while the whole backlog is drained.
    monkeypatch.setattr(applying, "TICK_PATIENCE", 0.0)
    h = Harness(f"sqlite:///{tmp_path}/s.db", "", start=T0)
    try:

        def send(first: int, n: int) -> None:
            events = [
                Event(type="success", job=f"job-{i % 7}", run_id=f"r{i}", ts=T0)
                for i in range(first, first + n)
            ]
            h.sidecar.appender.submit(events).result(timeout=10)

        send(0, 2 * APPLY_BATCH)  # arrives at T0
        h.clock.set(T0 + 30)
        send(2 * APPLY_BATCH, APPLY_BATCH + 5)  # arrives at T0 + 30
        h.clock.set(T0 + 60)
        # Each pass applies one batch (its patience is spent), then judges at the arrival of
        # the oldest event still waiting: the pass itself applies nothing, so appends never
        # wait for the applier's work under the lock it judges with.
        waiting = 3 * APPLY_BATCH + 5
        for judged_at in (T0, T0 + 30, T0 + 30, T0 + 60):
            h.sidecar.tick_sync()
            waiting = max(waiting - APPLY_BATCH, 0)
            assert h.sidecar.update_inbox_metrics()[0] == waiting
            assert h.sidecar.evaluator_last_run == judged_at
        assert sum(len(h.runs(f"job-{k}")) for k in range(7)) == 3 * APPLY_BATCH + 5
    finally:
        h.close()


def test_a_writer_item_that_only_reads_leaves_no_lock_behind(tmp_path: Path) -> None:
    h = Harness(f"sqlite:///{tmp_path}/s.db", "", start=T0)
    try:
        for _ in range(3):  # the pool hands the same connection back
            h.sidecar.writer.run_sync(lambda tx: tx.session.scalar(select(func.count(Job.id))))
        assert h.sidecar.store.write_lock.acquire(timeout=1)
        h.sidecar.store.write_lock.release()
        # Another thread takes the lock at once: no lazy transaction kept it.
        assert _append(h, "r1").result(timeout=5).accepted == 1
        # Readers on the same pool still begin deferred, never with the write lock.
        with h.sidecar.store.session() as reader:
            reader.scalar(select(func.count(Job.id)))
            assert _append(h, "r2").result(timeout=5).accepted == 1
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


def test_a_server_beside_its_applier_process_leaves_checkpoints_to_it(tmp_path: Path) -> None:
    # A commit that checkpoints copies the whole write-ahead log into the database file and
    # flushes it: the server's appends leave that to the applier process's commits, so no
    # acknowledgement waits for it.
    path = tmp_path / "s.db"
    server = Store(f"sqlite:///{path}", shared=True, checkpoints=False)
    applier = Store(f"sqlite:///{path}", shared=True)
    server.migrate()
    with applier.engine.connect() as conn:  # the log is empty: all in the file
        conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    migrated = path.stat().st_size
    body = "x" * 4000  # about a page per row
    rows = CHECKPOINT_PAGES + 200
    try:
        for i in range(rows):  # one commit each: SQLite checkpoints, if at all, at a commit
            with server.append_transaction() as conn:
                conn.execute(
                    INBOX.insert().values(
                        job="nightly",
                        run_id=f"r{i}",
                        type="success",
                        key_ts=0.0,
                        ts=T0,
                        arrived_at=T0,
                        flags=0,
                        body=body,
                    )
                )
        assert path.stat().st_size == migrated  # every page still in the log
        assert Path(f"{path}-wal").stat().st_size > rows * 4096
        with applier.append_transaction() as conn:  # the applier's next commit checkpoints
            conn.execute(INBOX.delete().where(INBOX.c.run_id == "r0"))
        assert path.stat().st_size > migrated + rows * 4000
    finally:
        server.dispose()
        applier.dispose()


def test_running_runs_are_found_through_the_partial_index_of_them(tmp_path: Path) -> None:
    # Only running runs are in ix_runs_running, so a finished run costs no write to it; the
    # lookups of a job's running runs (one job, and a batch's jobs at once) must use it.
    from jobpulse.sidecar.store import readahead, tx

    store = Store(f"sqlite:///{tmp_path}/s.db")
    store.migrate()
    try:
        with store.engine.connect() as conn:
            # Whatever the order of the indexes in the schema (a table rebuilt by a migration
            # lists them in any): SQLite's planner, with no statistics, once took whichever
            # of this and ix_runs_job_started came last, and read every run of the jobs.
            for last in ("ix_runs_running", "ix_runs_job_started"):
                sql = conn.exec_driver_sql(
                    "SELECT sql FROM sqlite_master WHERE name = ?", (last,)
                ).scalar_one()
                conn.exec_driver_sql(f"DROP INDEX {last}")
                conn.exec_driver_sql(sql)
                for query, args in ((tx._RUNNING, (1,)), (readahead._RUNNING, (1, 2))):
                    text = str(query.compile(store.engine))
                    text = text.replace("(__[POSTCOMPILE_ids])", "(?, ?)")
                    plan = conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {text}", args).all()
                    assert [row[3] for row in plan] == [
                        "SEARCH runs USING INDEX ix_runs_running (job_id=? AND outcome=?)"
                    ], last
            names = {i["name"] for i in sa_inspect(conn).get_indexes("runs")}
            assert "ix_runs_running" in names and "ix_runs_job_outcome" not in names
    finally:
        store.dispose()
