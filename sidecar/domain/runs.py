"""Runs: what a start, a finish, a scheduler's ``missed`` report and a progress or log event do
to a job's runs (overlaps, timeouts' deadlines, abandoned runs, finish-only runs, late outcomes,
slow runs judged by :mod:`.anomaly`).

A run with no ``max_runtime`` that will never finish (its process crashed) is **abandoned**:
closed as ``timeout`` with ``error_type`` ``abandoned`` when its process starts another run (a
later start from the same host and pid) or when it sent nothing for ``abandon_after``. It is
counted with the timeouts but moves neither streak: the sidecar infers it, the job never
reported it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from jobpulse.instrumentation.wire import Event

from .anomaly import is_slow
from .base import DELIVERY_ALLOWANCE, Arrival
from .dependencies import Dependencies
from .jobconfig import JobConfig
from .tables import Job, Run, loaded, new_row, put, set_new

if TYPE_CHECKING:
    from .transaction import Tx

__all__ = ["ABANDONED", "Runs"]

ABANDONED = "abandoned"  # the error_type of a run closed as abandoned


class Runs(Dependencies):
    def _unskew(self, ev: Event, now: float) -> tuple[float, float | None, bool]:
        if ev.sent_at is None:
            return ev.ts, ev.scheduled_for, False
        offset = now - ev.sent_at
        if abs(offset) <= self.settings.max_clock_skew:
            return ev.ts, ev.scheduled_for, False
        sf = ev.scheduled_for + offset if ev.scheduled_for is not None else None
        return ev.ts + offset, sf, True

    def _fill_details(self, run: Run, ev: Event) -> None:
        for name in (
            "attempt",
            "host",
            "pid",
            "trace_id",
            "span_id",
            "count",
            "exit_code",
            "error_type",
            "error_message",
        ):
            value = getattr(ev, name)
            if value is not None:
                setattr(run, name, value)
        if ev.metadata is not None:
            run.meta = ev.metadata
        if ev.message:
            self._append_log(run, ev.message)

    def _append_log(self, run: Run, text: str) -> None:
        log = (run.log + "\n" + text) if run.log else text
        limit = self.settings.log_bytes
        if len(log.encode()) > limit:
            log = log.encode()[-limit:].decode("utf-8", "ignore")
        run.log = log

    def _new_run(
        self,
        job: Job,
        run_id: str,
        started_at: float,
        now: float,
        *,
        has_start: bool,
        scheduled_for: float | None,
        clock_skew: bool,
    ) -> Run:
        # What the run starts with is given here, not set on it afterwards: a set on a
        # row costs the ORM's attribute events.
        return new_row(
            Run,
            {
                "job_id": job.id,
                "run_id": run_id,
                "started_at": started_at,
                "received_at": now,
                "outcome": "running",
                "has_start": has_start,
                "scheduled_for": scheduled_for,
                "late": False,
                "clock_skew": clock_skew,
                "overlap": False,
                "stale": False,
                "slow": False,
            },
        )

    def _abandon_at(self, run: Run) -> float | None:
        """When a running run with no max_runtime counts as abandoned: ``abandon_after`` past
        its last sign of life (its start or latest progress). None with a max_runtime (its
        deadline) or with the bound off."""
        if run.deadline is not None or not self.settings.abandon_after:
            return None
        alive = max(run.started_at, run.last_progress_at or run.started_at)
        return alive + self.settings.abandon_after

    def _abandon(self, tx: Tx, job: Job, cfg: JobConfig, run: Run, at: float) -> None:
        run.outcome = "timeout"
        run.error_type = ABANDONED
        self._count_outcome(tx, job, cfg, "timeout", at, None)
        self._run_decided(tx, job, cfg, run, ok=False, at=at)

    def _close_abandoned(self, tx: Tx, job: Job, cfg: JobConfig, a: Arrival) -> None:
        """Before a start is judged for overlap: close the runs with no max_runtime that its
        process has left (it started earlier on the same host and pid) or that passed their
        abandon bound by its arrival."""
        ev = a.event
        for run in tx.running_runs(job.id):
            if run.deadline is not None:
                continue
            same_process = ev.host is not None and ev.pid is not None
            if same_process and (run.host, run.pid) == (ev.host, ev.pid) and a.ts > run.started_at:
                self._abandon(tx, job, cfg, run, a.ts)
            elif (bound := self._abandon_at(run)) is not None and a.now > bound:
                self._abandon(tx, job, cfg, run, bound)

    def _on_start(self, tx: Tx, job: Job, cfg: JobConfig, a: Arrival) -> None:
        ev, run_id, ts, scheduled_for, skewed, now = a
        run = tx.run(job.id, run_id)
        if run is not None:
            # The finish came first: the run is already matched and closed; keep its start.
            run.has_start = True
            if run.finished_at is not None and ts <= run.finished_at:
                run.started_at = ts
            self._fill_details(run, ev)
            return
        run = self._new_run(
            job, run_id, ts, now, has_start=True, scheduled_for=scheduled_for, clock_skew=skewed
        )
        self._fill_details(run, ev)
        self._close_abandoned(tx, job, cfg, a)
        in_flight = tx.running_runs(job.id)
        tx.add_run(run)
        if in_flight:
            run.overlap = True
            job.overlap_total += 1
            if cfg.concurrency == "forbid":
                self._condition(tx, job, "overlap", now)
        self._match_run(
            tx,
            job,
            cfg,
            run,
            scheduled_for if scheduled_for is not None else ts,
            earliest=False,
            now=now,
        )
        anchor = (
            run.slot
            if run.slot is not None
            else cfg.schedule.at_or_before(ts)
            if cfg.schedule.kind == "cron"
            else None
        )
        max_runtime = cfg.max_runtime_at(
            anchor if anchor is not None else (ts if cfg.schedule.kind == "every" else None)
        )
        run.deadline = ts + max_runtime if max_runtime is not None else None
        if run.deadline is not None and run.deadline <= now:
            # Delivered after its max_runtime had passed (a spooled start): give its finish,
            # which may come in the next request, a moment before closing it as timed out.
            run.deadline = now + DELIVERY_ALLOWANCE
        job.last_start_at = max(job.last_start_at or ts, ts)

    def _on_finish(self, tx: Tx, job: Job, cfg: JobConfig, a: Arrival) -> None:
        ev, run_id, ts, scheduled_for, skewed, now = a
        outcome = "retry" if ev.type == "failure" and ev.will_retry else ev.type
        run = tx.run(loaded(job)["id"], run_id)
        new = run is None
        if run is None:
            # A finish-only run (`job && curl .../ping/job`): it started `duration` earlier,
            # or, with no duration, at some unknown time before it finished.
            start = ts - ev.duration if ev.duration is not None else ts
            run = self._new_run(
                job,
                run_id,
                start,
                now,
                has_start=False,
                scheduled_for=scheduled_for,
                clock_skew=skewed,
            )
            tx.add_run(run)
            self._match_run(
                tx,
                job,
                cfg,
                run,
                scheduled_for if scheduled_for is not None else start,
                earliest=ev.duration is None and scheduled_for is None,
                now=now,
            )
            last = loaded(job)["last_start_at"]
            if last is None or start > last:
                put(job, "last_start_at", start)
        abandoned = run.outcome == "timeout" and run.error_type == ABANDONED
        self._fill_details(run, ev)
        if abandoned:
            run.error_type = ABANDONED  # why its outcome, which a late finish keeps, is timeout
        duration = ev.duration if ev.duration is not None else max(0.0, ts - run.started_at)
        if run.outcome == "running":
            if new:
                set_new(run, outcome=outcome, finished_at=ts, duration=duration)
            else:
                run.outcome = outcome
                run.finished_at = ts
                run.duration = duration
            # Judged before its duration is counted: a run never raises its own bar.
            measured = ev.duration is not None or run.has_start
            anomaly = cfg.anomaly if outcome in ("success", "failure") and measured else None
            if anomaly is not None and is_slow(tx, job.id, anomaly, duration, now):
                run.slow = True
                job.slow_total += 1
            self._count_outcome(tx, job, cfg, outcome, ts, duration)
            if outcome == "success":
                self._good(tx, job, cfg, now)
            elif outcome == "failure":
                self._bad(tx, job, cfg, "failed", now, happened=ts)
            if outcome != "retry":
                self._run_decided(tx, job, cfg, run, ok=outcome == "success", at=ts)
        elif run.outcome == "timeout" and run.late_outcome is None:
            # Recorded on the run and counted toward recovery; counters stay as they were.
            run.late_outcome = outcome
            run.finished_at = ts
            run.duration = duration
            if outcome == "success":
                job.last_success_at = max(job.last_success_at or ts, ts)
                self._good(tx, job, cfg, now)
                self._run_decided(tx, job, cfg, run, ok=True, at=ts)

    def _on_missed(
        self, tx: Tx, job: Job, cfg: JobConfig, ev: Event, scheduled_for: float, now: float
    ) -> None:
        if ev.reason == "max_instances":
            job.overlap_total += 1
        slot = self._find_slot(tx, job, cfg, scheduled_for, earliest=False)
        if slot is None and cfg.schedule.kind == "none" and tx.slot(job.id, scheduled_for) is None:
            slot = scheduled_for
        if slot is None:
            return
        self._record_missed(tx, job, cfg, slot, now, reason=ev.reason or "scheduler")
        if cfg.schedule.kind == "every" and job.cursor is not None and slot >= job.cursor:
            assert cfg.schedule.every is not None
            job.cursor = slot + cfg.schedule.every

    def _on_progress(self, tx: Tx, job: Job, ev: Event, run_id: str, ts: float) -> None:
        run = tx.run(job.id, run_id)
        if run is None:
            return
        if ev.type == "progress":
            run.last_progress_at = max(run.last_progress_at or ts, ts)
            if ev.count is not None:
                run.count = ev.count
        if ev.message:
            self._append_log(run, ev.message)
