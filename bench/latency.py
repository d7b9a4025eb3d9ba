"""Benchmark 8: detection latency against a real ``jobpulse serve`` on the real clock.

Jobs with 6-field cron schedules (seconds) staggered over a minute, grace 1 s, and no runs. A
scraper polls ``/metrics`` every 100 ms; a job's latency is the time from ``slot + grace`` to
the first scrape whose ``jobpulse_job_missed_runs_total`` for it is 1. The poll interval and
the scrape's own duration are part of the figure (Prometheus would add its scrape interval).
"""

from __future__ import annotations

import math
import re
import time

from .common import Check, Result, Sidecar, scratch_dir

GRACE = 1.0
POLL = 0.1
_SAMPLE = re.compile(rb'^jobpulse_job_missed_runs_total\{job_name="lat-(\d+)"\} (\S+)$', re.M)


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1)]


def detection_latency(quick: bool) -> Result:
    jobs = 100 if quick else 1_000
    spread = 5 if quick else 50  # seconds the slots are spread over (lead + spread < 60)
    lead = 8.0  # the sidecar starts and registers every job before the first slot
    with scratch_dir("latency") as tmp:
        start = math.ceil(time.time() + lead)
        seconds = [(start + i % spread) % 60 for i in range(jobs)]
        config = "jobs:\n" + "".join(
            f'  - name: lat-{i}\n    schedule: "{s} * * * * *"\n    grace: 1s\n'
            for i, s in enumerate(seconds)
        )
        slots = {i: float(start + i % spread) for i in range(jobs)}
        seen: dict[int, float] = {}
        with Sidecar(tmp, config, env={"JOBPULSE_JOB_CAP": str(jobs + 100)}) as sc:
            if time.time() > start - 1:
                raise RuntimeError("the sidecar took too long to start for this schedule")
            deadline = start + spread + GRACE + 15
            scrapes = 0
            while len(seen) < jobs and time.time() < deadline and scrapes < 10_000:
                scrapes += 1
                body = sc.body("/metrics")
                at = time.time()
                for m in _SAMPLE.finditer(body):
                    i = int(m.group(1))
                    if i not in seen and float(m.group(2)) >= 1:
                        seen[i] = at
                time.sleep(POLL)
    latencies = [seen[i] - (slots[i] + GRACE) for i in seen]
    missing = jobs - len(seen)
    p99 = _percentile(latencies, 0.99) if latencies and not missing else None
    return Result(
        "detection_latency",
        f"Detection latency, {jobs:,} jobs, slot + grace → visible in /metrics",
        [
            Check(
                "p99 delay after slot + grace",
                p99,
                1.0,
                "<= 1 s",
                "s",
                "max",
                1.0,
                note=f"{missing} jobs never seen missed" if missing else "",
            ),
        ],
        {
            "jobs": jobs,
            "p50_s": _percentile(latencies, 0.5) if latencies else None,
            "p99_s": _percentile(latencies, 0.99) if latencies else None,
            "max_s": max(latencies) if latencies else None,
            "min_s": min(latencies) if latencies else None,
            "scrapes": scrapes,
            "poll_s": POLL,
        },
    )
