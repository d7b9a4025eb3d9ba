"""Thresholds: outcomes counted on the job and its hourly rollup, and the good and bad streaks
that move a job down after ``failure_threshold`` and back up after ``recovery_threshold``.
"""

from __future__ import annotations

from bisect import bisect_left
from typing import TYPE_CHECKING

from .base import OUTCOMES
from .jobconfig import JobConfig
from .rollup import add_duration
from .states import States
from .tables import Job, loaded, put

if TYPE_CHECKING:
    from .transaction import Tx

__all__ = ["Thresholds"]

_COUNTERS = {outcome: f"runs_{outcome}" for outcome in OUTCOMES}  # the job's count of each


class Thresholds(States):
    def _count_outcome(
        self, tx: Tx, job: Job, cfg: JobConfig, outcome: str, at: float, duration: float | None
    ) -> None:
        row = loaded(job)
        counter = _COUNTERS[outcome]
        put(job, counter, row[counter] + 1)
        job_id = row["id"]
        roll = tx.rollup(job_id, at)
        # A failure or timeout in a maintenance window is recorded on the run and in the
        # counters, but left out of the hourly statistics the success ratios come from: the
        # planned downtime must not page as JobPulseFailureRatioHigh once the window closes.
        if outcome not in ("failure", "timeout") or not self._maintained(tx, job, at):
            setattr(roll, outcome, getattr(roll, outcome) + 1)
        if outcome == "success":
            last = row["last_success_at"]
            if last is None or at > last:  # set only what changes, as in Engine.apply
                put(job, "last_success_at", at)
        elif outcome in ("failure", "timeout"):
            job.last_failure_at = max(row["last_failure_at"] or at, at)
        if duration is not None and outcome != "timeout":
            if row["last_duration"] != duration:
                put(job, "last_duration", duration)
            buckets = list(row["duration_buckets"] or [])
            if len(buckets) != len(cfg.buckets) + 1:
                buckets = [0] * (len(cfg.buckets) + 1)
            buckets[bisect_left(cfg.buckets, duration)] += 1  # the first bound >= duration
            put(job, "duration_buckets", buckets)
            put(job, "duration_sum", row["duration_sum"] + duration)
            put(job, "duration_count", row["duration_count"] + 1)
            add_duration(roll, duration)
            tx.note_duration(job_id, at, duration)

    def _good(self, tx: Tx, job: Job, cfg: JobConfig, at: float) -> None:
        row = loaded(job)
        good = row["good_streak"] + 1
        put(job, "good_streak", good)
        if row["bad_streak"]:  # set only what changes: an ORM set costs more than its read
            job.bad_streak = 0
        state = row["state"]
        if state == "new" or (state == "down" and good >= cfg.recovery_threshold):
            self._set_state(tx, job, "up", None, at)

    def _bad(
        self,
        tx: Tx,
        job: Job,
        cfg: JobConfig,
        reason: str,
        at: float,
        *,
        count: int = 1,
        happened: float | None = None,
    ) -> None:
        """A bad outcome at ``at`` (``happened``: when it happened, if not then). One that
        happened in a maintenance window moves neither streak."""
        if self._maintained(tx, job, at if happened is None else happened):
            return
        job.bad_streak += count
        job.good_streak = 0
        if job.state == "paused":
            job.reason = reason  # the latest bad outcome: a paused job resumes down with it
        elif job.state == "down":
            self._set_state(tx, job, "down", reason, at)  # a new reason is a flip
        elif job.bad_streak >= cfg.failure_threshold:
            self._set_state(tx, job, "down", reason, at)
