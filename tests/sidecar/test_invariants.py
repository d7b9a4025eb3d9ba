"""Accounting invariants under random event sequences (hypothesis).

Whatever arrives, in whatever order, at whatever time: every counter equals what the store
holds, each slot is judged at most once, a filled slot points at the run that filled it, and
flips form one timeline.
"""

from __future__ import annotations

import itertools
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from jobpulse.sidecar.domain.tables import Flip, Job, Rollup, Run, Slot
from tests.sidecar.harness import T0, Harness

CONFIG = """
jobs:
  - name: cron
    schedule: "*/5 * * * *"
    failure_threshold: 2
  - name: poll
    every: 7m
  - name: strict
    schedule: "*/10 * * * *"
    concurrency: forbid
    max_runtime: 4m
"""
JOBS = ("cron", "poll", "strict")

op = st.one_of(
    st.tuples(st.just("wait"), st.floats(1, 1200)),
    st.tuples(
        st.just("run"),
        st.sampled_from(JOBS),
        st.integers(0, 5),  # run id (reused ids exercise idempotency and late finishes)
        st.floats(-900, 60),  # start relative to now (negative: delivered late)
        st.one_of(st.none(), st.floats(0, 600)),  # duration; None: never finishes
        st.sampled_from(["success", "failure", "retry", "cancelled"]),
    ),
    st.tuples(st.just("finish_only"), st.sampled_from(JOBS), st.floats(-600, 0)),
    st.tuples(st.just("missed"), st.sampled_from(JOBS), st.integers(-3, 3)),
    st.tuples(st.just("pause"), st.sampled_from(JOBS)),
    st.tuples(st.just("resume"), st.sampled_from(JOBS)),
)


def _check(h: Harness) -> None:
    with h.sidecar.store.session() as s:
        for job in s.scalars(select(Job)):
            slots = list(s.scalars(select(Slot).where(Slot.job_id == job.id)))
            runs = list(s.scalars(select(Run).where(Run.job_id == job.id)))
            rolls = list(s.scalars(select(Rollup).where(Rollup.job_id == job.id)))
            by_id = {r.run_id: r for r in runs}
            assert len({x.slot for x in slots}) == len(slots), "a slot recorded twice"
            missed = sum(x.count for x in slots if x.status in ("missed", "gap"))
            assert job.missed_total == missed
            assert sum(r.missed for r in rolls) == missed
            filled = [x for x in slots if x.status == "filled"]
            assert sum(r.due for r in rolls) == missed + len(filled)
            for x in filled:
                assert x.run_id in by_id and by_id[x.run_id].slot == x.slot
            assert len({x.run_id for x in filled}) == len(filled), "one run filled two slots"
            for outcome in ("success", "failure", "timeout", "cancelled", "retry"):
                stored = sum(1 for r in runs if r.outcome == outcome)
                assert getattr(job, f"runs_{outcome}") == stored, outcome
                assert sum(getattr(r, outcome) for r in rolls) == stored, outcome
            assert job.running == sum(1 for r in runs if r.outcome == "running")
            flips = list(s.scalars(select(Flip).where(Flip.job_id == job.id).order_by(Flip.id)))
            for a, b in itertools.pairwise(flips):
                assert a.at <= b.at, "flips out of order"
                assert a.to_state == b.from_state, "flips do not chain"
            if flips:
                expected = "up" if job.state == "late" else job.state
                assert flips[-1].to_state == expected
            cfg = h.sidecar.engine.config(job)
            if job.bad_streak >= cfg.failure_threshold:
                assert job.state in ("down", "paused")
            if job.state == "down":
                assert job.reason is not None
        assert s.scalar(select(func.count(Job.id))) == len(JOBS)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(op, min_size=1, max_size=25))
def test_counters_always_match_the_store(ops: list[Any]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        h = Harness(f"sqlite:///{Path(tmp)}/s.db", CONFIG, start=T0 - 60)
        try:
            for item in ops:
                now = h.clock.now()
                kind = item[0]
                if kind == "wait":
                    h.move(now + item[1])
                elif kind == "run":
                    _, job, rid, offset, duration, outcome = item
                    run_id = f"{job}-{rid}"
                    start = now + offset
                    h.send("start", job, ts=start, run_id=run_id, arrive=now)
                    if duration is not None:
                        kw: dict[str, Any] = {"duration": duration}
                        wire = outcome
                        if outcome == "retry":
                            wire, kw["will_retry"] = "failure", True
                        h.send(
                            wire,
                            job,
                            ts=start + duration,
                            run_id=run_id,
                            arrive=max(now, start + duration),
                            **kw,
                        )
                elif kind == "finish_only":
                    _, job, offset = item
                    h.send("success", job, ts=now + offset, arrive=now)
                elif kind in ("pause", "resume"):
                    with h.sidecar.store.transaction() as tx:
                        target = tx.job(item[1])
                        assert target is not None
                        getattr(h.sidecar.engine, kind)(tx, target, now)
                else:
                    _, job, k = item
                    h.send(
                        "missed",
                        job,
                        ts=now,
                        scheduled_for=T0 + 300 * k + 3600 * 0,
                        arrive=now,
                        reason="misfire",
                    )
                _check(h)
        finally:
            h.close()
