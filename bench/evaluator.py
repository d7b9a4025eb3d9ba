"""Benchmark 5: the evaluator.

A tick with 10 due jobs among 1,000, 10,000 and 100,000 (idle jobs bulk-inserted, their next
deadline a month away): the tick reads due jobs through the ``next_deadline`` index, so its cost
should not grow with the idle ones. And the catch-up after 3 hours of downtime for 10,000
five-minute jobs: missed records written per second.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select

from jobpulse.sidecar.config import parse_config
from jobpulse.sidecar.domain.clock import ManualClock
from jobpulse.sidecar.domain.tables import Slot
from jobpulse.sidecar.service import Sidecar
from jobpulse.sidecar.settings import Settings

from .common import Check, Result, median, scratch_dir
from .population import insert_jobs, job_rows

T0 = datetime(2026, 11, 23, 10, 0, tzinfo=UTC).timestamp()
DUE = "jobs:\n" + "".join(f'  - name: due-{i}\n    schedule: "*/5 * * * *"\n' for i in range(10))


def _tick_seconds(store: str, idle: int, ticks: int) -> float:
    clock = ManualClock(T0 - 10)
    sidecar = Sidecar(
        Settings(store=store, catchup_delay=0, job_cap=idle + 100),
        clock=clock,
        file_config=parse_config(DUE),
    )
    sidecar.start()
    try:
        insert_jobs(sidecar.store.engine, job_rows(idle, T0, history=False), T0, rollups=False)
        samples = []
        for k in range(ticks):
            clock.set(T0 + 31 + 300 * k)  # each due-* job's slot has just passed its grace
            start = time.perf_counter()
            evaluated = sidecar.tick_sync()
            samples.append(time.perf_counter() - start)
            if evaluated != 10:
                raise RuntimeError(f"expected 10 due jobs, the tick evaluated {evaluated}")
        return median(samples[1:])  # the first tick warms caches
    finally:
        sidecar.stop()


def _catch_up(store: str, jobs: int, hours: float) -> dict[str, Any]:
    cfg = parse_config(
        "jobs:\n"
        + "".join(f'  - name: c-{i:05d}\n    schedule: "*/5 * * * *"\n' for i in range(jobs))
    )
    clock = ManualClock(T0 - 10)
    settings = Settings(store=store, catchup_delay=0, job_cap=jobs + 100)
    first = Sidecar(settings, clock=clock, file_config=cfg)
    first.start()
    first.tick_sync()
    first.stop()
    # Down for ``hours``; the new process judges every slot that passed meanwhile.
    clock.set(T0 + hours * 3600)
    second = Sidecar(settings, clock=clock, file_config=cfg)
    started = time.perf_counter()
    second.start()
    ticks = 0
    while ticks < 10_000:
        ticks += 1
        if second.tick_sync() == 0:
            break
    elapsed = time.perf_counter() - started
    with second.store.session() as session:
        missed = session.scalar(
            select(func.count()).select_from(Slot).where(Slot.status != "filled")
        )
        slots = session.scalar(select(func.sum(Slot.count)).where(Slot.status != "filled"))
    second.stop()
    return {
        "jobs": jobs,
        "downtime_hours": hours,
        "missed_records": missed,
        "missed_slots": slots,
        "seconds": elapsed,
        "records_per_second": (missed or 0) / elapsed,
        "ticks": ticks,
    }


def evaluator(quick: bool) -> Result:
    sizes = (1_000, 10_000) if quick else (1_000, 10_000, 100_000)
    ticks = 6 if quick else 15
    per_size: dict[int, float] = {}
    with scratch_dir("evaluator") as tmp:
        for n in sizes:
            per_size[n] = _tick_seconds(f"sqlite:///{tmp}/tick-{n}.db", n, ticks)
        catch = _catch_up(f"sqlite:///{tmp}/catchup.db", 200 if quick else 2_000, 3.0)
    ms = {n: v * 1e3 for n, v in per_size.items()}
    top = max(sizes)
    return Result(
        "evaluator",
        "Evaluator tick: 10 due jobs among many; catch-up after 3 h down",
        [
            Check(
                f"tick with {top:,} jobs / with 1,000",
                ms[top],
                ms[1_000],
                "<= 2x",
                "ms",
                "max",
                2.0,
                note="quick: 10,000 instead of 100,000" if quick else "",
            ),
        ],
        {"tick_ms": {str(k): v for k, v in ms.items()}, "ticks": ticks, "catch_up": catch},
    )
