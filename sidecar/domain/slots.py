"""Slots: matching a run to the scheduled slot whose window holds it, judging slots whose
deadline passed with no run (one ``missed`` row each, or one ``gap`` past the catch-up cap),
and the read-side questions about a job's schedule.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from .jobconfig import JobConfig
from .tables import Job, Run, Slot, loaded, new_row, set_new
from .thresholds import Thresholds

if TYPE_CHECKING:
    from .transaction import Tx

__all__ = ["Slots"]

_SLOT_WINDOWS = 4096  # (job, time) pairs whose slot windows are kept (see _slot_window)


class Slots(Thresholds):
    def _find_slot(
        self, tx: Tx, job: Job, cfg: JobConfig, t: float, *, earliest: bool
    ) -> float | None:
        sched = cfg.schedule
        if sched.kind == "cron":
            job_id = loaded(job)["id"]
            lo, hi, fits = self._slot_window(job_id, cfg, t)
            if not fits:
                return None
            taken = tx.slots_between(job_id, lo, hi)
            candidates = [s for s in fits if s not in taken]
            if not candidates:
                return None
            if earliest:
                return candidates[0]
            return min(candidates, key=lambda s: (abs(s - t), s))
        if sched.kind == "every" and job.cursor is not None:
            s = job.cursor
            if s - cfg.early_at(s) <= t <= s + cfg.grace_at(s) and tx.slot(job.id, s) is None:
                return s
        return None

    def _slot_window(
        self, job_id: int, cfg: JobConfig, t: float
    ) -> tuple[float, float, tuple[float, ...]]:
        """The bounds of the cron slots near ``t`` and those of them whose window holds ``t``:
        a function of the configuration and ``t`` alone, kept for the runs of a job that
        report the same time (a scheduler's retries of one slot; a batch's finish-only runs)."""
        memo = self._slot_windows
        known = memo.get((job_id, t))
        if known is not None and known[0] is cfg:
            return known[1]
        lo, hi = cfg.match_window(t)
        fits = tuple(
            s
            for s in cfg.schedule.between(lo, hi)
            if s - cfg.early_at(s) <= t <= s + cfg.grace_at(s)
        )
        if len(memo) >= _SLOT_WINDOWS:
            memo.clear()
        memo[(job_id, t)] = (cfg, (lo, hi, fits))
        return lo, hi, fits

    def _match_run(
        self, tx: Tx, job: Job, cfg: JobConfig, run: Run, t: float, *, earliest: bool, now: float
    ) -> None:
        """Fill the slot that ``run``, just added (``Tx.add_run``), belongs to at ``t``, or mark
        it late when the latest slot before it was missed."""
        every = cfg.schedule.every
        if every is not None:
            # Slots whose deadline this run's start has passed are missed whatever the order
            # the events arrive in; then the run re-anchors the series at its start + every.
            self._judge(tx, job, cfg, min(t, now), limit_to_now=True)
        slot = self._find_slot(tx, job, cfg, t, earliest=earliest)
        if slot is not None:
            tx.add_slot(
                new_row(
                    Slot,
                    {
                        "job_id": job.id,
                        "slot": slot,
                        "status": "filled",
                        "run_id": run.run_id,
                        "count": 1,
                        "recorded_at": now,
                    },
                )
            )
            tx.rollup(job.id, slot).due += 1
            set_new(run, slot=slot)
        else:
            set_new(run, late=self._latest_missed(tx, job, cfg, t))
        if every is not None and (job.cursor is None or run.started_at + every > job.cursor):
            job.cursor = run.started_at + every

    def _latest_missed(self, tx: Tx, job: Job, cfg: JobConfig, t: float) -> bool:
        sched = cfg.schedule
        if sched.kind == "cron":
            s = sched.at_or_before(t)
            row = tx.slot(job.id, s) if s is not None else None
        else:
            row = tx.latest_slot_before(job.id, t)
        return row is not None and row.status in ("missed", "gap")

    def _record_missed(
        self,
        tx: Tx,
        job: Job,
        cfg: JobConfig,
        slot: float,
        at: float,
        *,
        reason: str | None = None,
        count: int = 1,
    ) -> None:
        if count == 1 and self._skip_in_maintenance(tx, job, cfg, slot, at):
            return
        tx.add_slot(
            new_row(
                Slot,
                {
                    "job_id": job.id,
                    "slot": slot,
                    "status": "gap" if count > 1 else "missed",
                    "run_id": None,
                    "count": count,
                    "reason": reason,
                    "recorded_at": at,
                },
            )
        )
        job.changed_at = max(job.changed_at, at)
        self._count_missed(tx, job, cfg, slot, at, count=count)

    def _count_missed(
        self, tx: Tx, job: Job, cfg: JobConfig, slot: float, at: float, *, count: int = 1
    ) -> None:
        """Count ``count`` missed slots from ``slot`` on: on the job, in the slot's hourly
        rollup (missed and due), and toward the job's bad streak."""
        job.missed_total += count
        roll = tx.rollup(job.id, slot)
        roll.missed += count
        roll.due += count
        self._bad(tx, job, cfg, "missed", at, count=count)

    def _next_slot(self, cfg: JobConfig, s: float) -> float | None:
        if cfg.schedule.every is not None:
            return s + cfg.schedule.every
        return cfg.schedule.next_after(s)

    def _judge(
        self, tx: Tx, job: Job, cfg: JobConfig, now: float, *, limit_to_now: bool = False
    ) -> None:
        """Record every slot whose deadline ``now`` has passed and that no run filled."""
        judged = 0
        while job.cursor is not None:
            s = job.cursor
            deadline = s + cfg.grace_at(s)
            if not now > deadline:
                return
            if tx.slot(job.id, s) is None:
                if judged >= self.settings.catchup_cap and not limit_to_now:
                    self._record_gap(tx, job, cfg, s, now)
                    return
                self._record_missed(tx, job, cfg, s, deadline)
                judged += 1
            job.cursor = self._next_slot(cfg, s)

    def _record_gap(self, tx: Tx, job: Job, cfg: JobConfig, first: float, now: float) -> None:
        """Past the catch-up cap: one record carrying the count of the remaining missed slots."""
        count, s, last = 0, first, first
        filled = tx.slots_between(job.id, first, now)
        cursor: float | None = first
        while cursor is not None and now > cursor + cfg.grace_at(cursor):
            # Slots in a maintenance window are left out of the gap (none is recorded).
            if cursor not in filled and not self._slot_in_maintenance(tx, job, cfg, cursor):
                count += 1
                last = cursor
            cursor = self._next_slot(cfg, cursor)
        job.cursor = cursor
        if count:
            self._record_missed(
                tx, job, cfg, s, last + cfg.grace_at(last), reason="gap", count=count
            )

    def expected_interval(self, job: Job, now: float) -> float | None:
        """The longer of the period ending at the latest slot and the one starting there."""
        cfg = self.config(job)
        sched = cfg.schedule
        if sched.every is not None:
            return sched.every
        if sched.kind != "cron":
            return None
        latest = sched.at_or_before(now)
        if latest is None:
            return None
        prev = sched._iter(math.floor(latest), reverse=True)
        before = next(prev, None)
        after = sched.next_after(latest)
        periods = [
            latest - before if before is not None else 0.0,
            (after - latest) if after is not None else 0.0,
        ]
        return max(periods) or None

    def next_expected(self, tx: Tx, job: Job) -> float | None:
        """The earliest slot at or after the cursor that no run has filled."""
        cfg = self.config(job)
        s = job.cursor
        for _ in range(1000):
            if s is None or tx.slot(job.id, s) is None:
                return s
            s = self._next_slot(cfg, s)
        return s
