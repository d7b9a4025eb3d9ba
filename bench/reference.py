"""The baseline for ``/metrics``: prometheus_client's ``generate_latest`` over a custom
collector that yields the same per-job series as jobpulse's renderer, from in-memory state.

``snapshot`` reads that state from the store the plain way (ORM rows, one query per job where
one is needed); it is not timed. ``tests/sidecar/test_exposition_parity.py`` checks that both
parse to the same samples, so the comparison is like for like.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from sqlalchemy import select

from jobpulse.sidecar.domain.engine import OUTCOMES, STATES
from jobpulse.sidecar.domain.rollup import WINDOWS, window_start
from jobpulse.sidecar.domain.tables import Job, Rollup, Slot
from jobpulse.sidecar.exposition.cache import FAMILIES
from jobpulse.sidecar.service import Sidecar

_HELP = {name: help_ for name, _, help_ in FAMILIES}
_GAUGES = (
    ("jobpulse_job_last_success_timestamp_seconds", "last_success_at"),
    ("jobpulse_job_last_failure_timestamp_seconds", "last_failure_at"),
    ("jobpulse_job_last_run_start_timestamp_seconds", "last_start_at"),
    ("jobpulse_job_last_run_duration_seconds", "last_duration"),
    ("jobpulse_job_next_expected_run_timestamp_seconds", "next_expected"),
    ("jobpulse_job_expected_interval_seconds", "expected_interval"),
    ("jobpulse_job_running", "running"),
    ("jobpulse_job_oldest_running_start_timestamp_seconds", "oldest_running_start"),
)


def snapshot(sidecar: Sidecar, now: float) -> list[dict[str, Any]]:
    """Every live job's values, as plain dicts."""
    engine = sidecar.engine
    out = []
    with sidecar.store.session() as session:
        for job in session.scalars(select(Job).where(Job.removed.is_(False)).order_by(Job.id)):
            cfg = engine.config(job)
            next_expected = None
            if job.cursor is not None and job.state != "paused":
                filled = session.scalar(
                    select(Slot.id).where(Slot.job_id == job.id, Slot.slot == job.cursor)
                )
                if filled is None:
                    next_expected = job.cursor
                elif cfg.schedule.every is None:
                    next_expected = cfg.schedule.next_after(job.cursor)
            ratios = {}
            rollups = list(session.scalars(select(Rollup).where(Rollup.job_id == job.id)))
            if rollups:
                for window in WINDOWS:
                    start = window_start(window, now)
                    rows = [r for r in rollups if r.hour >= start]
                    succ = sum(r.success for r in rows)
                    denom = succ + sum(r.failure + r.timeout + r.cancelled + r.missed for r in rows)
                    due = sum(r.due for r in rows)
                    miss = sum(r.missed for r in rows)
                    ratios[window] = (succ / denom if denom else None, miss / due if due else None)
            counts = list(job.duration_buckets or [])
            if len(counts) != len(cfg.buckets) + 1:
                counts = [0] * (len(cfg.buckets) + 1)
            out.append(
                {
                    "name": job.name,
                    "schedule": cfg.schedule.text,
                    "timezone": cfg.schedule.timezone,
                    "labels": dict(sorted(cfg.labels.items())),
                    "runs": {o: getattr(job, f"runs_{o}") for o in OUTCOMES},
                    "missed": job.missed_total,
                    "overlap": job.overlap_total,
                    "buckets": list(zip(cfg.buckets, counts, strict=False)),
                    "overflow": counts[-1],
                    "duration_sum": job.duration_sum,
                    "duration_count": job.duration_count,
                    "last_success_at": job.last_success_at,
                    "last_failure_at": job.last_failure_at,
                    "last_start_at": job.last_start_at,
                    "last_duration": job.last_duration,
                    "next_expected": next_expected,
                    "expected_interval": engine.expected_interval(job, now),
                    "running": float(job.running),
                    "oldest_running_start": job.oldest_running_start,
                    "bad_streak": float(job.bad_streak),
                    "state": job.state,
                    "ratios": ratios,
                }
            )
    return out


class ReferenceCollector(Collector):
    """The per-job families the way client_python's docs/collector/custom.md builds them."""

    def __init__(self, jobs: list[dict[str, Any]]) -> None:
        self.jobs = jobs

    def collect(self) -> Iterator[Metric]:
        jobs = self.jobs
        info_keys: list[str] = []
        info = GaugeMetricFamily("jobpulse_job_info", _HELP["jobpulse_job_info"])
        for j in jobs:
            names = ["job_name", "schedule", "timezone", *j["labels"]]
            values = [j["name"], j["schedule"], j["timezone"], *j["labels"].values()]
            info.add_sample("jobpulse_job_info", dict(zip(names, values, strict=True)), 1)
        del info_keys
        yield info
        runs = CounterMetricFamily(
            "jobpulse_job_runs", _HELP["jobpulse_job_runs"], labels=["job_name", "outcome"]
        )
        for j in jobs:
            for outcome, value in j["runs"].items():
                runs.add_metric([j["name"], outcome], value)
        yield runs
        for family, key in (
            ("jobpulse_job_missed_runs", "missed"),
            ("jobpulse_job_overlapping_runs", "overlap"),
        ):
            counter = CounterMetricFamily(family, _HELP[family], labels=["job_name"])
            for j in jobs:
                counter.add_metric([j["name"]], j[key])
            yield counter
        fam = "jobpulse_job_run_duration_seconds"
        hist = HistogramMetricFamily(fam, _HELP[fam], labels=["job_name"])
        for j in jobs:
            cumulative = 0
            buckets = []
            for bound, n in j["buckets"]:
                cumulative += n
                buckets.append((_bound(bound), cumulative))
            buckets.append(("+Inf", cumulative + j["overflow"]))
            hist.add_metric([j["name"]], buckets, j["duration_sum"])
            # HistogramMetricFamily derives _count from +Inf; jobpulse reports its own count.
            hist.samples[-2] = hist.samples[-2]._replace(value=j["duration_count"])
        yield hist
        for family, key in _GAUGES[:5]:
            yield _gauge(family, key, jobs)
        for family, key in _GAUGES[5:]:
            yield _gauge(family, key, jobs)
        state = GaugeMetricFamily(
            "jobpulse_job_state", _HELP["jobpulse_job_state"], labels=["job_name", "state"]
        )
        for j in jobs:
            for s in STATES:
                state.add_metric([j["name"], s], 1 if j["state"] == s else 0)
        yield state
        streak = GaugeMetricFamily(
            "jobpulse_job_consecutive_failures",
            _HELP["jobpulse_job_consecutive_failures"],
            labels=["job_name"],
        )
        for j in jobs:
            streak.add_metric([j["name"]], j["bad_streak"])
        yield streak
        for family, index in (("jobpulse_job_success_ratio", 0), ("jobpulse_job_miss_ratio", 1)):
            ratio = GaugeMetricFamily(family, _HELP[family], labels=["job_name", "window"])
            for j in jobs:
                for window, pair in j["ratios"].items():
                    if pair[index] is not None:
                        ratio.add_metric([j["name"], window], pair[index])
            yield ratio


def _bound(value: float) -> str:
    from prometheus_client.utils import floatToGoString

    text: str = floatToGoString(value)
    return text


def _gauge(family: str, key: str, jobs: list[dict[str, Any]]) -> GaugeMetricFamily:
    gauge = GaugeMetricFamily(family, _HELP[family], labels=["job_name"])
    for j in jobs:
        if j[key] is not None:
            gauge.add_metric([j["name"]], j[key])
    return gauge
