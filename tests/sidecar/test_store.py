"""The store's transactions on SQLite: readers never hold up the writer."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import func, select

from jobpulse.instrumentation.wire import Event
from jobpulse.sidecar.domain.tables import Job
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
