"""Benchmark: what the applier costs per event, in process, against raw SQLite inserts.

The top of the hour as the applier sees it: 5,000 cron jobs each have a start and a success
waiting in the inbox (appended beforehand, not measured), and the sidecar applies them all
(``Sidecar.apply_pending``: read-ahead, engine, one transaction per ``APPLY_BATCH`` events). The
figure is CPU seconds of the whole process per event (the applier runs in the writer thread),
so a noisy neighbour on the other core moves it less than wall time.

The floor, in the same run: raw ``sqlite3`` ``executemany`` of one row per event into a table
shaped like ``runs``, in transactions of the same size, WAL, ``synchronous=FULL``. Its ratio
says how far the engine's bookkeeping (runs, slots, keys, rollups, flips, job counters) is from
the storage it ends in.

Reported beside it: the same count of events of benchmark 10's load (``apply_lag``: finish-only
successes spread over 100 jobs, so each batch meets each job many times), whose rate at half
the peak the applier must keep up with while sharing the process with ingest.

Target: 4,000 events per CPU second. At the top of the hour the applier shares one core with
ingest while 10,000 events must be applied within 5 s (``top_of_hour``): that needs at least
2,000 events/s while sharing, so about 4,000 alone.
"""

from __future__ import annotations

import gc
import sqlite3
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from jobpulse.instrumentation.wire import Event, format_ts, parse_event
from jobpulse.sidecar.config import parse_config
from jobpulse.sidecar.domain.clock import ManualClock
from jobpulse.sidecar.service import Sidecar, tune_gc
from jobpulse.sidecar.settings import Settings
from jobpulse.sidecar.store.inbox import APPLY_BATCH

from .common import Check, Result, median, scratch_dir

JOBS = 5000
STEADY_JOBS = 100  # benchmark 10's jobs
HOUR = 1_800_000_000.0 - 1_800_000_000.0 % 3600  # on the hour
TARGET = 4000.0


def _event(etype: str, job: str, run_id: str, at: float, **extra: Any) -> Event:
    fields = {"type": etype, "job": job, "run_id": run_id, "ts": format_ts(at), **extra}
    return parse_event(fields)[0]


def _top_of_hour_events(jobs: int) -> Iterator[list[Event]]:
    """Each of ``jobs`` jobs reports a start and a success, in one request per job."""
    for i in range(jobs):
        rid = uuid.uuid4().hex
        yield [
            _event("start", f"top-{i}", rid, HOUR),
            _event("success", f"top-{i}", rid, HOUR + 1, duration=1.0),
        ]


def _steady_events(events: int) -> Iterator[list[Event]]:
    """Benchmark 10's load: finish-only successes spread over ``STEADY_JOBS`` hourly jobs, in
    requests of 100 events."""
    for first in range(0, events, 100):
        yield [
            _event("success", f"top-{i % STEADY_JOBS}", f"steady-{i}", HOUR + 1, duration=1.5)
            for i in range(first, min(first + 100, events))
        ]


def _applied_per_cpu_second(tmp: Path, jobs: int, *, steady: bool = False) -> float:
    """Events applied per CPU second: ``2 * jobs`` events waiting in the inbox, of the top of the
    hour (``jobs`` jobs, a start and a success each) or, ``steady``, of benchmark 10's load."""
    (tmp / "apply.db").unlink(missing_ok=True)
    names = STEADY_JOBS if steady else jobs
    config = parse_config(
        "jobs:\n" + "".join(f'  - name: top-{i}\n    schedule: "0 * * * *"\n' for i in range(names))
    )
    clock = ManualClock(HOUR - 60)
    settings = Settings(store=f"sqlite:///{tmp}/apply.db", catchup_delay=0.0)
    sidecar = Sidecar(settings, clock=clock, file_config=config)
    sidecar.start()
    thresholds = tune_gc()  # the collector as `jobpulse serve` sets it
    try:
        clock.set(HOUR + 2)
        for events in _steady_events(2 * jobs) if steady else _top_of_hour_events(jobs):
            sidecar.appender.submit(events).result(60)
        started = time.process_time()
        outcomes = sidecar.apply_pending()
        spent = time.process_time() - started
    finally:
        gc.set_threshold(*thresholds)
        sidecar.stop()
    if len(outcomes) != 2 * jobs:
        raise RuntimeError(f"applied {len(outcomes)} events, expected {2 * jobs}")
    return len(outcomes) / spent


def _sqlite_per_cpu_second(tmp: Path, rows: int) -> float:
    path = tmp / "raw.db"
    path.unlink(missing_ok=True)
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute(
        "CREATE TABLE runs (id INTEGER PRIMARY KEY, job_id INTEGER, run_id TEXT, outcome TEXT, "
        "started_at REAL, finished_at REAL, duration REAL, UNIQUE (job_id, run_id))"
    )
    sql = (
        "INSERT INTO runs (job_id, run_id, outcome, started_at, finished_at, duration) "
        "VALUES (?, ?, ?, ?, ?, ?)"
    )
    started = time.process_time()
    for first in range(0, rows, APPLY_BATCH):
        conn.execute("BEGIN")
        conn.executemany(
            sql,
            [
                (i, uuid.uuid4().hex, "success", HOUR, HOUR + 1, 1.0)
                for i in range(first, min(first + APPLY_BATCH, rows))
            ],
        )
        conn.execute("COMMIT")
    spent = time.process_time() - started
    conn.close()
    return rows / spent


def apply_cost(quick: bool) -> Result:
    jobs = 1000 if quick else JOBS
    rounds = 1 if quick else 3
    ours: list[float] = []
    steady: list[float] = []
    floor: list[float] = []
    with scratch_dir("apply") as tmp:
        for _ in range(rounds):
            floor.append(_sqlite_per_cpu_second(tmp, 2 * jobs))
            ours.append(_applied_per_cpu_second(tmp, jobs))
            steady.append(_applied_per_cpu_second(tmp, jobs, steady=True))
    rate, raw = median(ours), median(floor)
    return Result(
        "apply_cost",
        f"Applier: {2 * jobs:,} top-of-the-hour events applied in process",
        [
            Check("events applied per CPU second", rate, TARGET, ">= 4,000/s", "ev/s", "min", 1.0),
            Check(
                f"benchmark 10's load ({STEADY_JOBS} jobs, finish-only runs) / top of the hour",
                median(steady),
                rate,
                "reported",
                "ev/s",
                "min",
                0.0,
            ),
        ],
        {
            "events_per_cpu_s": ours,
            "steady_events_per_cpu_s": steady,
            "raw_sqlite_rows_per_cpu_s": floor,
            "ratio_to_raw_sqlite": rate / raw,
            "cpu_ms_per_event": 1000 / rate,
            "jobs": jobs,
            "rounds": rounds,
        },
    )
