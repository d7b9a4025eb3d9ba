"""Group commit and the inbox must not change what is recorded.

Requests that reach the inbox together are appended in one transaction, and the applier then
applies them in one transaction, with one flush at the end and reads that see the batch's own
unwritten rows. Whatever the mix, the store must end up exactly as if each request had been
appended and applied on its own; a writer item that fails is rolled back alone, and every
other item of its batch is kept and answered.
"""

from __future__ import annotations

import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from jobpulse.instrumentation.wire import Event
from jobpulse.sidecar.domain.tables import EventKey, Flip, InboxRow, Job, Rollup, Run, Slot
from jobpulse.sidecar.service import Sidecar
from jobpulse.sidecar.store.applier import apply_rows
from jobpulse.sidecar.store.inbox import IngestResult
from jobpulse.sidecar.store.tx import Tx
from tests.sidecar.harness import T0, Harness
from tests.sidecar.test_invariants import CONFIG, JOBS


def together(sidecar: Sidecar, works: list[Callable[[Tx], Any]]) -> list[Future[Any]]:
    """Submit ``works`` so that the writer takes them as one batch: they queue up while the
    writer is held by a gate item."""
    gate = threading.Event()
    held = sidecar.writer.submit(lambda tx: gate.wait(10))
    futures = [sidecar.writer.submit(work) for work in works]
    gate.set()
    held.result(10)
    for future in futures:
        future.exception(10)
    return futures


def appended_together(
    sidecar: Sidecar, requests: list[list[Event]], now: float
) -> list[IngestResult]:
    """Submit ``requests`` so that the inbox appends them as one batch: they queue up while
    the appender waits for the store's write lock, held here."""
    with sidecar.store.write_lock:
        gate = sidecar.appender.submit([], at=now)  # taken alone; waits for the lock
        time.sleep(0.05)  # let the appender take the gate before the others queue
        futures = [sidecar.appender.submit(events, at=now) for events in requests]
    gate.result(10)
    return [future.result(10) for future in futures]


def inbox_rows(h: Harness) -> int:
    with h.sidecar.store.session() as s:
        return s.scalar(select(func.count()).select_from(InboxRow)) or 0


def snapshot(h: Harness) -> dict[str, Any]:
    """Everything the engine records, without surrogate ids."""
    out: dict[str, Any] = {}
    with h.sidecar.store.session() as s:
        for job in s.scalars(select(Job).order_by(Job.name)):
            cols = {
                c.key: getattr(job, c.key) for c in Job.__table__.columns if c.key not in ("id",)
            }
            slots = sorted(
                (x.slot, x.status, x.run_id, x.count, x.reason, x.recorded_at)
                for x in s.scalars(select(Slot).where(Slot.job_id == job.id))
            )
            runs = sorted(
                tuple(getattr(r, c.key) for c in Run.__table__.columns if c.key != "id")
                for r in s.scalars(select(Run).where(Run.job_id == job.id))
            )
            flips = [
                (f.at, f.from_state, f.to_state, f.reason)
                for f in s.scalars(select(Flip).where(Flip.job_id == job.id).order_by(Flip.id))
            ]
            rollups = sorted(
                tuple(getattr(r, c.key) for c in Rollup.__table__.columns if c.key != "job_id")
                for r in s.scalars(select(Rollup).where(Rollup.job_id == job.id))
            )
            keys = sorted(
                (k.run_id, k.type, k.key_ts)
                for k in s.scalars(select(EventKey).where(EventKey.job_id == job.id))
            )
            out[job.name] = (cols, slots, runs, flips, rollups, keys)
    return out


def _event(item: tuple[Any, ...], now: float) -> Event:
    kind, job, rid, offset = item[:4]
    run_id = f"{job}-{rid}"
    if kind == "start":
        return Event(type="start", job=job, run_id=run_id, ts=now + offset)
    if kind == "missed":
        return Event(
            type="missed",
            job=job,
            run_id=run_id,
            ts=now,
            scheduled_for=T0 + 300 * rid,
            reason="misfire",
        )
    duration = item[4]
    return Event(
        type="failure" if kind == "retry" else kind,
        job=job,
        run_id=run_id,
        ts=now + offset,
        duration=duration,
        will_retry=True if kind == "retry" else None,
    )


event_item = st.tuples(
    st.sampled_from(["start", "success", "failure", "retry", "cancelled", "missed"]),
    st.sampled_from(JOBS),
    st.integers(0, 4),  # run id: reused ids pair starts with finishes and hit idempotency
    st.floats(-900, 30),
    st.one_of(st.none(), st.floats(0, 600)),
)
step = st.tuples(st.floats(1, 900), st.lists(event_item, min_size=1, max_size=12))


@pytest.mark.parametrize("shape", ["requests", "one request"])
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps=st.lists(step, min_size=1, max_size=5))
def test_a_batch_records_what_the_same_requests_record_one_by_one(
    shape: str, steps: list[tuple[float, list[tuple[Any, ...]]]]
) -> None:
    """``requests``: one event per request, the requests in one writer batch. ``one
    request``: all the events in one request (read ahead in bulk, then applied in order)."""
    with tempfile.TemporaryDirectory() as tmp:
        alone = Harness(f"sqlite:///{Path(tmp)}/alone.db", CONFIG, start=T0 - 60)
        batched = Harness(f"sqlite:///{Path(tmp)}/batched.db", CONFIG, start=T0 - 60)
        try:
            for wait, items in steps:
                for h in (alone, batched):
                    h.move(h.clock.now() + wait)
                now = alone.clock.now()
                events = [_event(item, now) for item in items]
                one_by_one = [alone.sidecar.ingest_sync([ev], now=now) for ev in events]
                sc = batched.sidecar
                if shape == "requests":
                    results = appended_together(sc, [[ev] for ev in events], now)
                    answers = [(r.accepted, r.duplicates, r.rejected) for r in results]
                    assert answers == [(r.accepted, r.duplicates, r.rejected) for r in one_by_one]
                    sc.apply_pending(now)  # one apply transaction for all of them
                else:
                    whole = sc.ingest_sync(events, now=now)
                    assert whole.run_ids == [r.run_ids[0] for r in one_by_one]
                    assert whole.accepted == sum(r.accepted for r in one_by_one)
                    assert whole.duplicates == sum(r.duplicates for r in one_by_one)
                assert inbox_rows(batched) == 0
            assert snapshot(batched) == snapshot(alone)
        finally:
            alone.close()
            batched.close()


def test_a_failing_request_is_rolled_back_alone(store_url: str) -> None:
    h = Harness(store_url, CONFIG, start=T0 + 10)
    try:
        sc = h.sidecar
        now = h.clock.now()

        def broken(tx: Tx) -> None:
            sc.engine.apply(tx, Event(type="start", job="cron", run_id="doomed", ts=now), now)
            raise RuntimeError("this request fails after writing")

        events = [
            Event(type="start", job="cron", run_id="a", ts=now),
            Event(type="success", job="cron", run_id="a", ts=now + 5),
            Event(type="success", job="poll", run_id="b", ts=now, duration=3.0),
        ]
        ids = list(sc.appender.submit(events, at=now).result(10).ids)
        assert None not in ids

        def apply_one(row_id: int) -> Callable[[Tx], Any]:
            return lambda tx: len(apply_rows(tx, sc.engine, now=now, limit=1, after=row_id - 1)[0])

        works: list[Callable[[Tx], Any]] = [apply_one(i) for i in ids if i is not None]
        works.insert(1, broken)
        futures = together(sc, works)
        with pytest.raises(RuntimeError, match="fails after writing"):
            futures[1].result()
        assert sc.writer.rollbacks == 1
        assert [f.result() for i, f in enumerate(futures) if i != 1] == [1, 1, 1]
        assert inbox_rows(h) == 0
        runs = {r.run_id: r.outcome for name in ("cron", "poll") for r in h.runs(name)}
        assert runs == {"a": "success", "b": "success"}  # nothing of "doomed"
        cron = h.job("cron")
        assert (cron.runs_success, cron.running, cron.state) == (1, 0, "up")
        # The failed request can be sent again: its idempotency key was not kept.
        again = h.ping([Event(type="start", job="cron", run_id="doomed", ts=now)])
        assert (again.accepted, again.duplicates) == (1, 0)
    finally:
        h.close()


def test_a_batch_sees_its_own_unwritten_rows(store_url: str) -> None:
    """A start and its finish, and two runs competing for one slot, in the same batch."""
    h = Harness(store_url, CONFIG, start=T0 + 10)
    try:
        sc = h.sidecar
        now = h.clock.now()
        events = [
            Event(type="start", job="strict", run_id="first", ts=now),
            Event(type="start", job="strict", run_id="second", ts=now + 1),
            Event(type="success", job="strict", run_id="first", ts=now + 2),
            Event(type="success", job="strict", run_id="first", ts=now + 2),
        ]
        results = appended_together(sc, [[ev] for ev in events], now)
        assert [(r.accepted, r.duplicates) for r in results] == [(1, 0), (1, 0), (1, 0), (0, 1)]
        sc.apply_pending(now)  # the three accepted events in one apply transaction
        assert inbox_rows(h) == 0
        runs = {r.run_id: r for r in h.runs("strict")}
        assert runs["first"].slot == T0 and runs["first"].outcome == "success"
        assert runs["second"].slot is None and runs["second"].overlap
        job = h.job("strict")
        assert (job.overlap_total, job.running, job.state) == (1, 1, "up")
        # Down at the overlap (concurrency: forbid), up again when the first run succeeded.
        assert h.flips("strict") == [("new", "down", "overlap"), ("down", "up", None)]
        assert h.slots("strict") == [(T0, "filled", "first")]
    finally:
        h.close()
