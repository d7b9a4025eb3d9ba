"""Dependencies: jobs that run after other jobs (``after: [extract]``).

A **tick** is a slot time of the job at the root of a chain: a job's run for tick ``T`` is the
run that filled its slot ``T`` (a late run, or a later run in the same period of a cron job
such as a re-run after a failure, counts for the latest slot before its start; an
unscheduled job's run is its own tick, its start).

A job with ``after:`` and **no schedule of its own** is due by its upstreams. Its slots carry
the upstreams' tick, so a chain ``a -> b -> c`` shares ``a``'s slot times:

- when every upstream has succeeded for ``T``, the slot ``T`` is due at the last of those
  successes (``due``) and missed when no run started by ``due + grace`` (a start from
  ``early_tolerance`` before ``due`` counts, and so does a run whose start was applied before
  the upstream's success);
- when an upstream failed, timed out, was cancelled or missed ``T`` (or was itself skipped),
  the slot ``T`` is recorded ``skipped`` (reason ``upstream``, naming the job whose failure
  or miss caused it) before it was due: not missed, not a bad outcome, not due in the rollups;
  the skip is passed on down the chain;
- a success that comes later for ``T`` (a late run, a re-run) makes the slot due at that
  success, replacing the skip (it is then filled or missed as any due slot).

Its ``grace`` defaults to the grace its upstream had for the tick (a scheduled root's
period-based default, an unscheduled root's :data:`UNSCHEDULED_GRACE`), ``early_tolerance`` to
:data:`DEFAULT_EARLY`.

A job with ``after:`` **and** its own ``schedule:``/``every:`` is due at its own slots; when
one passes its deadline with no run and an upstream did not succeed for its latest tick at or
before that slot (missed or skipped it, or its last run failed, timed out or was cancelled,
with no success since), it is recorded ``skipped`` (reason ``upstream``) instead of missed. An
upstream still running or not yet judged leaves the slot judged as any other.

The ticks a by-upstream job has heard of are kept on its row (``Job.ticks``), each a mapping
``{"tick", "ok" (upstreams that succeeded for it), "due", "deadline", "skip"}``; the evaluator
wakes the job at the earliest ``deadline``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .base import EPS
from .jobconfig import JobConfig
from .maintained import MAINTENANCE
from .slots import Slots
from .tables import Job, Run, Slot, new_row, set_new

if TYPE_CHECKING:
    from .transaction import Tx

__all__ = [
    "DEFAULT_EARLY",
    "UNSCHEDULED_GRACE",
    "UPSTREAM",
    "Dependencies",
    "tick_deadlines",
    "tick_due",
]

UPSTREAM = "upstream"  # the reason of a slot skipped because a job it runs after did not succeed
UNSCHEDULED_GRACE = 3600.0  # the default grace after a tick of an unscheduled root job
DEFAULT_EARLY = 60.0  # how long before its upstream's success a dependent's start still counts
_KEEP_UNDUE = 8  # ticks kept that are not due (waiting on an upstream, or skipped)
_MAX_DEPTH = 64  # skips passed down a chain at most this deep (cycles are refused anyway)


class Dependencies(Slots):
    # ------------------------------------------------------------ an upstream decided a tick
    def _run_decided(
        self, tx: Tx, job: Job, cfg: JobConfig, run: Run, *, ok: bool, at: float
    ) -> None:
        """``run`` of ``job`` ended at ``at``, well (``ok``) or not: tell the jobs after it."""
        if not tx.downstreams(job.name):
            return
        tick = self._tick_of(tx, job, cfg, run)
        if tick is not None:
            self._announce(tx, job, tick, ok=ok, at=at)

    def _tick_of(self, tx: Tx, job: Job, cfg: JobConfig, run: Run) -> float | None:
        if run.slot is not None:
            return run.slot
        t = run.scheduled_for if run.scheduled_for is not None else run.started_at
        sched = cfg.schedule
        if sched.kind == "cron":
            return sched.at_or_before(t)
        if sched.kind == "every":
            row = tx.latest_slot_before(job.id, t)
            return row.slot if row is not None else None
        if cfg.by_upstream:
            # Only a late run: a start applied before its tick was due is matched to it then.
            row = tx.latest_slot_before(job.id, t) if run.late else None
            return row.slot if row is not None else None
        return run.started_at

    def _announce(
        self,
        tx: Tx,
        job: Job,
        tick: float,
        *,
        ok: bool,
        at: float,
        cause: str | None = None,
        depth: int = 0,
    ) -> None:
        """``job``'s tick ``tick`` succeeded (``ok``) or did not, at ``at``: update each job
        due by it (``cause``: the job to name when they are skipped, default ``job``)."""
        if depth > _MAX_DEPTH:
            return
        for down in tx.downstreams(job.name):
            down_cfg = self.config(down)
            if down.id == job.id or down.removed or down.state == "paused":
                continue
            if job.name not in down_cfg.after or not down_cfg.by_upstream:
                continue
            row = tx.slot(down.id, tick)
            if row is not None and row.status != "skipped":
                continue  # filled or missed: decided
            entries = [{**e, "ok": list(e["ok"])} for e in down.ticks or []]
            entry = next((e for e in entries if e["tick"] == tick), None)
            if entry is None:
                entry = {"tick": tick, "ok": [], "due": None, "deadline": None, "skip": None}
                entries.append(entry)
            down.changed_at = max(down.changed_at, at)
            if ok:
                if job.name not in entry["ok"]:
                    entry["ok"].append(job.name)
                if entry["due"] is None and set(down_cfg.after) <= set(entry["ok"]):
                    grace = self._dependent_grace(tx, down_cfg, job, tick)
                    entry["due"], entry["deadline"] = at, at + grace
                    down.ticks = _pruned(entries)
                    self._became_due(tx, down, down_cfg, entry, at)
                    continue
            elif entry["due"] is None and row is None:
                entry["skip"] = cause or job.name
                down.ticks = _pruned(entries)
                self._record_skipped(tx, down, tick, UPSTREAM, at, upstream=entry["skip"])
                self._announce(
                    tx, down, tick, ok=False, at=at, cause=entry["skip"], depth=depth + 1
                )
                continue
            down.ticks = _pruned(entries)

    def _dependent_grace(self, tx: Tx, cfg: JobConfig, upstream: Job | None, tick: float) -> float:
        """The dependent's own grace, else the one its upstream had for ``tick``."""
        if cfg.grace is not None:
            return cfg.grace
        for _ in range(_MAX_DEPTH):
            if upstream is None:
                break
            up_cfg = self.config(upstream)
            if up_cfg.grace is not None:
                return up_cfg.grace
            if up_cfg.scheduled:
                return up_cfg.grace_at(tick)
            if not up_cfg.after:
                break
            upstream = tx.job(up_cfg.after[0])
        return UNSCHEDULED_GRACE

    def _became_due(
        self, tx: Tx, job: Job, cfg: JobConfig, entry: dict[str, Any], at: float
    ) -> None:
        """The tick is due: a run that already started in its window fills it (the run's start
        was applied before the upstream's success); otherwise wake the job at the deadline."""
        early = cfg.early_tolerance if cfg.early_tolerance is not None else DEFAULT_EARLY
        for run in tx.runs_started_between(job.id, entry["due"] - early, entry["deadline"]):
            if run.slot is None:
                self._fill_tick(tx, job, entry, run, at)
                if run.outcome not in ("running", "retry"):  # it finished before: pass it on
                    ok = "success" in (run.outcome, run.late_outcome)
                    self._run_decided(tx, job, cfg, run, ok=ok, at=run.finished_at or at)
                return
        if job.removed or job.state == "paused":
            return
        wake = max(entry["deadline"] + EPS, self.judge_from)
        if job.next_deadline is None or wake < job.next_deadline:
            job.next_deadline = wake
        if job.state == "up" and entry["due"] <= at:
            self._set_state(tx, job, "late", None, at)

    # ------------------------------------------------------------ a dependent's own slots
    def _match_run(
        self, tx: Tx, job: Job, cfg: JobConfig, run: Run, t: float, *, earliest: bool, now: float
    ) -> None:
        if not cfg.by_upstream:
            super()._match_run(tx, job, cfg, run, t, earliest=earliest, now=now)
            return
        early = cfg.early_tolerance if cfg.early_tolerance is not None else DEFAULT_EARLY
        open_ticks = [
            e
            for e in job.ticks or []
            if e["due"] is not None and e["due"] - early <= t <= e["deadline"]
        ]
        if open_ticks:
            self._fill_tick(tx, job, min(open_ticks, key=lambda e: e["due"]), run, now)
        else:
            set_new(run, late=self._latest_missed(tx, job, cfg, t))  # see Slots._match_run

    def _fill_tick(self, tx: Tx, job: Job, entry: dict[str, Any], run: Run, now: float) -> None:
        tick = entry["tick"]
        row = tx.slot(job.id, tick)
        if row is None:
            tx.add_slot(
                new_row(
                    Slot,
                    {
                        "job_id": job.id,
                        "slot": tick,
                        "status": "filled",
                        "run_id": run.run_id,
                        "count": 1,
                        "recorded_at": now,
                    },
                )
            )
        else:  # skipped, then due at a later success of its upstream: the skip is replaced
            row.status, row.run_id, row.reason, row.upstream = "filled", run.run_id, None, None
            row.recorded_at = now
            tx.slot_changed(row)
        tx.rollup(job.id, tick).due += 1
        run.slot, run.late = tick, False
        job.ticks = [e for e in job.ticks or [] if e["tick"] != tick] or None

    def _judge(
        self, tx: Tx, job: Job, cfg: JobConfig, now: float, *, limit_to_now: bool = False
    ) -> None:
        super()._judge(tx, job, cfg, now, limit_to_now=limit_to_now)
        if not cfg.by_upstream:
            return
        for entry in list(job.ticks or []):
            if entry["due"] is not None and now > entry["deadline"]:
                job.ticks = [e for e in job.ticks or [] if e["tick"] != entry["tick"]] or None
                self._miss_tick(tx, job, cfg, entry["tick"], entry["deadline"])

    def _miss_tick(self, tx: Tx, job: Job, cfg: JobConfig, tick: float, at: float) -> None:
        row = tx.slot(job.id, tick)
        if row is None:
            self._record_missed(tx, job, cfg, tick, at)
            return
        # Skipped, then due at a later success of its upstream, and still not run.
        if self._slot_in_maintenance(tx, job, cfg, tick, until=at):
            row.reason, row.upstream, row.recorded_at = MAINTENANCE, None, at
            tx.slot_changed(row)
            self._count_skipped(job, MAINTENANCE)
            self._announce(tx, job, tick, ok=False, at=at)
            return
        row.status, row.reason, row.upstream, row.recorded_at = "missed", None, None, at
        tx.slot_changed(row)
        self._count_missed(tx, job, cfg, tick, at)
        self._announce(tx, job, tick, ok=False, at=at)

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
        """A slot judged missed by time is skipped instead when an upstream of a job with its
        own schedule did not succeed; either way the jobs after this one are told."""
        if reason is None and cfg.after and cfg.scheduled:
            cause = self._blocking_upstream(tx, cfg, slot)
            if cause is not None:
                self._record_skipped(tx, job, slot, UPSTREAM, at, upstream=cause)
                self._announce(tx, job, slot, ok=False, at=at, cause=cause)
                return
        super()._record_missed(tx, job, cfg, slot, at, reason=reason, count=count)
        self._announce(tx, job, slot, ok=False, at=at)

    def _blocking_upstream(self, tx: Tx, cfg: JobConfig, slot: float) -> str | None:
        """The first upstream that did not succeed for its latest tick at or before ``slot``
        (the job to name): that tick was missed or skipped, or its last run since failed,
        timed out or was cancelled, and no success came since the tick (a re-run, a later
        attempt, a late run). An upstream still running or not yet judged blocks nothing."""
        for name in cfg.after:
            up = tx.job(name)
            if up is None:
                continue
            up_sched = self.config(up).schedule
            if up_sched.kind == "cron":
                tick = up_sched.at_or_before(slot)
                row = tx.slot(up.id, tick) if tick is not None else None
            else:
                row = tx.latest_slot_before(up.id, slot)
                tick = row.slot if row is not None else None
            if tick is None or (up.last_success_at is not None and up.last_success_at >= tick):
                continue
            if row is not None and row.status in ("missed", "gap"):
                return name
            if row is not None and row.status == "skipped":
                return row.upstream or name
            if up.last_failure_at is not None and up.last_failure_at >= tick:
                return name
            run = tx.run(up.id, row.run_id) if row is not None and row.run_id else None
            if run is not None and run.outcome == "cancelled":
                return name
        return None


def _pruned(entries: list[dict[str, Any]]) -> list[dict[str, Any]] | None:
    """Every due tick, and the newest of the others (waiting on an upstream, or skipped and
    kept for a later success of it)."""
    undue = sorted((e for e in entries if e["due"] is None), key=lambda e: e["tick"])
    keep = [e for e in entries if e["due"] is not None] + undue[-_KEEP_UNDUE:]
    return sorted(keep, key=lambda e: e["tick"]) or None


# ---------------------------------------------------------------- what refresh reads
def tick_deadlines(ticks: list[dict[str, Any]]) -> list[float]:
    """The deadlines of a job's due ticks (``job.ticks``)."""
    return [e["deadline"] + EPS for e in ticks if e["due"] is not None]


def tick_due(ticks: list[dict[str, Any]], now: float) -> bool:
    """Some tick of the job (``job.ticks``) is due at ``now``."""
    return any(e["due"] is not None and e["due"] <= now for e in ticks)
