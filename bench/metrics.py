"""Benchmark 6: ``/metrics`` with every per-job series for 10,000 (and 100,000) jobs.

jobpulse: ``MetricsCache.refresh()`` + ``render()``, what the ``/metrics`` handler runs for the
fleet families. Steady state: a scrape after a few jobs changed (the cache re-reads only those).
Cold: the full refresh of the first scrape (and of every hour). Baseline:
``prometheus_client.generate_latest`` over a custom collector yielding the same series from
in-memory state (bench/reference.py), i.e. the cheapest a collector-based ``/metrics`` gets.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from sqlalchemy import update

from jobpulse.sidecar.domain.clock import ManualClock
from jobpulse.sidecar.domain.tables import Job
from jobpulse.sidecar.service import Sidecar
from jobpulse.sidecar.settings import Settings

from .common import Check, Result, median, scratch_dir
from .population import insert_jobs, job_rows
from .reference import ReferenceCollector, snapshot

T0 = datetime(2026, 11, 23, 10, 20, tzinfo=UTC).timestamp()


def _measure(store: str, jobs: int, rounds: int, *, baseline: bool) -> dict[str, Any]:
    clock = ManualClock(T0)
    sidecar = Sidecar(Settings(store=store, catchup_delay=0, job_cap=jobs + 100), clock=clock)
    sidecar.start()
    try:
        insert_jobs(sidecar.store.engine, job_rows(jobs, T0), T0)
        cache = sidecar.cache
        cold = []
        for _ in range(max(1, rounds // 3)):
            cache.invalidate()
            start = time.perf_counter()
            cache.refresh()
            body = cache.render()
            cold.append(time.perf_counter() - start)
        steady = []
        for k in range(rounds):
            clock.set(T0 + 20 + k * 20)  # a scrape interval later
            ids = [1 + (k * 7 + i * 997) % jobs for i in range(5)]
            with sidecar.store.engine.begin() as conn:
                conn.execute(
                    update(Job)
                    .where(Job.id.in_(ids))
                    .values(runs_success=Job.runs_success + 1, changed_at=clock.now())
                )
            start = time.perf_counter()
            cache.refresh()
            body = cache.render()
            steady.append(time.perf_counter() - start)
        out: dict[str, Any] = {
            "jobs": jobs,
            "cold_ms": median(cold) * 1e3,
            "steady_ms": median(steady) * 1e3,
            "bytes": len(body),
        }
        if baseline:
            registry = CollectorRegistry(auto_describe=False)
            registry.register(ReferenceCollector(snapshot(sidecar, clock.now())))
            gen = []
            for _ in range(max(1, rounds // 3)):
                start = time.perf_counter()
                ref = generate_latest(registry)
                gen.append(time.perf_counter() - start)
            out["generate_latest_ms"] = median(gen) * 1e3
            out["generate_latest_bytes"] = len(ref)
        return out
    finally:
        sidecar.stop()


def metrics(quick: bool) -> Result:
    rounds = 3 if quick else 9
    with scratch_dir("metrics") as tmp:
        ten = _measure(f"sqlite:///{tmp}/m10k.db", 10_000, rounds, baseline=True)
        big = None if quick else _measure(f"sqlite:///{tmp}/m100k.db", 100_000, 3, baseline=False)
    checks = [
        Check(
            "steady-state scrape, 10,000 jobs / generate_latest",
            ten["steady_ms"],
            ten["generate_latest_ms"],
            "<= 0.1x",
            "ms",
            "max",
            0.1,
        ),
        Check(
            "cold (full refresh) scrape, 10,000 jobs / generate_latest",
            ten["cold_ms"],
            ten["generate_latest_ms"],
            "reported",
            "ms",
            "max",
            float("inf"),
        ),
    ]
    extra: dict[str, Any] = {"10000": ten}
    if big is not None:
        extra["100000"] = big
    return Result("metrics", "/metrics with every per-job series", checks, extra)
