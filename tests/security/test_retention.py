"""Retention under a manual clock: old raw runs and event rows are pruned in batches, runs in
flight, rollups and flips are kept; silent auto-registered jobs go; the store is measured."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import func, select

from jobpulse.instrumentation.wire import format_ts, parse_event
from jobpulse.sidecar.domain.tables import EventKey, Flip, Job, Rollup, Run
from jobpulse.sidecar.store import retention
from tests.sidecar.harness import T0, Harness

DAY = 86400.0
CONFIG = "jobs:\n  - name: configured\n    every: 1h\n"


def count(h: Harness, model: Any, *where: Any) -> int:
    with h.sidecar.store.session() as s:
        return int(s.scalar(select(func.count()).select_from(model).where(*where)) or 0)


def burst(h: Harness, job: str, n: int, at: float) -> None:
    """n finished runs of ``job`` in one request, all at ``at``."""
    raws = []
    for i in range(n):
        rid = uuid.uuid4().hex
        raws.append({"type": "start", "job": job, "run_id": rid, "ts": format_ts(at + i * 0.001)})
        raws.append({"type": "failure", "job": job, "run_id": rid, "ts": format_ts(at + 1)})
    h.sidecar.ingest_sync([parse_event(r)[0] for r in raws], now=at + 1)


def test_old_runs_and_events_are_pruned_in_batches(store_url: str, monkeypatch: Any) -> None:
    monkeypatch.setattr(retention, "BATCH", 7)
    h = Harness(store_url, CONFIG, start=T0, run_retention=30 * DAY, job_ttl=365 * DAY)
    try:
        burst(h, "configured", 20, T0)
        h.send("start", "unscheduled", ts=T0 + 2, run_id="in-flight-old")
        h.clock.set(T0 + 25 * DAY)
        burst(h, "configured", 3, T0 + 25 * DAY)
        rollups_before = count(h, Rollup)
        flips_before = count(h, Flip)
        assert count(h, Run) == 24 and count(h, EventKey) == 47
        h.clock.set(T0 + 31 * DAY)
        pruned = h.sidecar.retention.prune()
        assert (pruned.runs, pruned.events, pruned.jobs) == (20, 41, 0)
        # kept: the 3 recent runs and the one still running, with their event rows
        assert count(h, Run) == 4 and count(h, Run, Run.outcome == "running") == 1
        assert count(h, EventKey) == 6
        assert count(h, Rollup) == rollups_before and count(h, Flip) == flips_before
        job = h.job("configured")
        assert job.runs_failure == 23  # counters and /metrics never go backwards
        with h.sidecar.store.session() as s:
            assert s.scalar(select(func.sum(Rollup.failure))) == 23
        assert h.sidecar.retention.prune() == retention.Pruned()
    finally:
        h.close()


def test_silent_auto_registered_jobs_are_removed_after_job_ttl(store_url: str) -> None:
    h = Harness(store_url, CONFIG, start=T0, run_retention=400 * DAY, job_ttl=30 * DAY)
    try:
        h.send("start", "auto-old", ts=T0, run_id="a")
        h.send("start", "auto-fresh", ts=T0, run_id="b")
        h.clock.set(T0 + 20 * DAY)
        h.send("success", "auto-fresh", ts=T0 + 20 * DAY, run_id="b")
        h.clock.set(T0 + 30 * DAY + 1)
        pruned = h.sidecar.retention.prune()
        assert pruned.jobs == 1
        with h.sidecar.store.session() as s:
            names = set(s.scalars(select(Job.name)))
        # the configured job stays though it never reported; its history of the gone job too
        assert names == {"configured", "auto-fresh"}
        assert count(h, Run) == 1
        h.sidecar.cache.refresh()
        assert b'job_name="auto-old"' not in h.sidecar.cache.render()
    finally:
        h.close()


def test_store_size_is_measured_and_exported(store_url: str) -> None:
    h = Harness(store_url, CONFIG, start=T0)
    try:
        size = h.sidecar.retention.measure()
        assert size > 8192
        value = h.sidecar.metrics.registry.get_sample_value("jobpulse_store_size_bytes")
        assert value == size
    finally:
        h.close()


def test_retention_runs_every_few_minutes() -> None:
    from jobpulse.sidecar.store.retention import EVERY, Retention

    r = Retention(None)  # type: ignore[arg-type]
    assert r.due(T0) and not r.due(T0 + 1) and not r.due(T0 + EVERY - 1) and r.due(T0 + EVERY)


def test_old_judged_slots_are_pruned_and_counters_stay(store_url: str) -> None:
    cfg = 'jobs:\n  - name: five\n    schedule: "*/5 * * * *"\n'
    h = Harness(store_url, cfg, start=T0 - 60, run_retention=30 * DAY, job_ttl=365 * DAY)
    try:
        h.run("five", T0 + 1, 1)
        h.move(T0 + 3600)  # 10:05 .. 10:55 missed
        h.restart(at_time=T0 + 31 * DAY - 60)
        h.move(T0 + 31 * DAY + 31)  # catch-up: one gap record for the month, then recent slots
        before = h.job("five").missed_total
        recent = [s for s, _, _ in h.slots("five") if s >= T0 + 30 * DAY]
        pruned = h.sidecar.retention.prune()
        assert pruned.slots > 0
        assert all(s >= T0 + DAY for s, _, _ in h.slots("five"))
        assert [s for s, _, _ in h.slots("five") if s >= T0 + 30 * DAY] == recent
        assert h.job("five").missed_total == before  # counters never go backwards
    finally:
        h.close()
