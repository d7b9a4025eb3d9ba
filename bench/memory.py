"""Benchmark 7: resident memory per job of a ``jobpulse serve`` holding many jobs with history
(every per-job series has a value), after a ``/metrics`` scrape so the exposition cache is
full, above the same sidecar with no jobs (also scraped)."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from jobpulse.sidecar.store.database import Store

from .common import Check, Result, Sidecar, median, scratch_dir
from .population import insert_jobs, job_rows


def _rss_after_scrapes(tmp_dir: object, store: str, jobs: int) -> int:
    from pathlib import Path

    tmp = Path(str(tmp_dir))
    with Sidecar(tmp, "", store=store, env={"JOBPULSE_JOB_CAP": str(jobs + 100)}) as sc:
        samples = []
        for _ in range(3):
            sc.body("/metrics", timeout=300)
            time.sleep(0.2)
            samples.append(sc.rss_bytes())
        return int(median(samples))


def memory(quick: bool) -> Result:
    jobs = 10_000 if quick else 100_000
    now = datetime.now(UTC).timestamp()
    with scratch_dir("memory") as tmp:
        empty_url = f"sqlite:///{tmp}/empty.db"
        full_url = f"sqlite:///{tmp}/full.db"
        for url in (empty_url, full_url):
            store = Store(url)
            store.migrate()
            if url == full_url:
                insert_jobs(store.engine, job_rows(jobs, now), now)
            store.dispose()
        (tmp / "a").mkdir()
        (tmp / "b").mkdir()
        empty = _rss_after_scrapes(tmp / "a", empty_url, 0)
        full = _rss_after_scrapes(tmp / "b", full_url, jobs)
    per_job = (full - empty) / jobs / 1024
    return Result(
        "memory",
        f"Resident memory per job ({jobs:,} jobs with history, exposition cache included)",
        [
            Check(
                f"RSS per job above an empty sidecar, {jobs:,} jobs",
                per_job,
                6.0,
                "<= 6 KB/job",
                "KB/job",
                "max",
                1.0,
            ),
        ],
        {"jobs": jobs, "rss_empty_mb": empty / 2**20, "rss_full_mb": full / 2**20},
    )
