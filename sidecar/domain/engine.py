"""The domain: what an event or the passing of time does to a job.

Plain Python over a transaction (the :class:`~jobpulse.sidecar.domain.transaction.Tx`
protocol) and an explicit ``now``; no HTTP, no wall clock. The live sidecar and
``jobpulse replay`` run exactly this code.

Slots are judged in order from the job's ``cursor``: when ``now`` passes ``slot + grace`` with
no run in the slot, one ``missed`` row is written (``slots`` has one row per judged slot, so
the miss count is exact). Runs fill the nearest open slot whose window
``[slot - early_tolerance, slot + grace]`` holds the run's start (or ``scheduled_for``).
Bad outcomes (failed and timed-out runs, missed slots) count toward ``failure_threshold``;
conditions (stale, silent, overlap under ``concurrency: forbid``) take the job down at once.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple

from jobpulse.instrumentation.wire import Event

from .jobconfig import JobConfig, merge_fields
from .rollup import add_duration
from .tables import Flip, Job, Run, Slot

if TYPE_CHECKING:
    from .transaction import Tx

__all__ = ["Applied", "Engine", "EngineSettings", "Rejected"]

EPS = 0.001  # deadlines are strict: a slot is judged once the clock is past slot + grace
DELIVERY_ALLOWANCE = 60.0  # a late-delivered start waits this long for its finish
_PREFETCH_SPAN = 2 * 86400.0
OUTCOMES = ("success", "failure", "timeout", "cancelled", "retry")
STATES = ("new", "up", "late", "down", "paused")


class Rejected(Exception):
    """An event the engine refuses; ``field`` and ``reason`` go into the response."""

    def __init__(self, field: str, reason: str, *, code: str = "invalid") -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason
        self.code = code


@dataclass(frozen=True, slots=True)
class EngineSettings:
    max_clock_skew: float = 300.0
    catchup_cap: int = 1000
    job_cap: int = 10000
    log_bytes: int = 10240
    catchup_delay: float = 60.0


class _Arrival(NamedTuple):
    """An event as the sidecar takes it: its run, its times after clock-skew correction, and
    when it arrived."""

    event: Event
    run_id: str
    ts: float
    scheduled_for: float | None
    skewed: bool
    now: float


@dataclass(slots=True)
class Applied:
    duplicate: bool = False
    warning: str | None = None
    run_id: str | None = None


def _key_ts(ev: Event) -> float:
    """The timestamp part of an event's idempotency key: progress and log events repeat within
    a run, so their time tells them apart; a run has one start and one finish."""
    return ev.ts if ev.type in ("progress", "log") else 0.0


def _flip_state(state: str) -> str:
    return "up" if state == "late" else state


class Engine:
    def __init__(self, settings: EngineSettings | None = None, *, judge_from: float = 0.0) -> None:
        self.settings = settings or EngineSettings()
        # Slots, timeouts and silences are not judged before this instant (catch-up delay).
        self.judge_from = judge_from
        self._configs: dict[int, tuple[Any, JobConfig]] = {}

    # ------------------------------------------------------------------ configuration
    def config(self, job: Job) -> JobConfig:
        key = (job.file_fields, job.declared_fields)
        cached = self._configs.get(job.id)
        if cached is not None and cached[0] == key:
            return cached[1]
        fields, _ = merge_fields(job.file_fields, job.declared_fields)
        cfg = JobConfig.from_fields(job.name, fields)
        self._configs[job.id] = (key, cfg)
        return cfg

    def create_job(
        self,
        tx: Tx,
        name: str,
        now: float,
        *,
        file_fields: dict[str, Any] | None = None,
        declared: dict[str, Any] | None = None,
    ) -> Job:
        job = Job(
            name=name,
            file_fields=file_fields,
            declared_fields=declared,
            in_file=file_fields is not None,
            created_at=now,
            state="new",
            state_since=now,
            changed_at=now,
            bad_streak=0,
            good_streak=0,
            runs_success=0,
            runs_failure=0,
            runs_timeout=0,
            runs_cancelled=0,
            runs_retry=0,
            missed_total=0,
            overlap_total=0,
            duration_sum=0.0,
            duration_count=0,
            running=0,
            removed=False,
            silent=False,
        )
        tx.add_job(job)
        cfg = self.config(job)
        self._restart_cursor(job, cfg, now)
        if cfg.paused:
            self._pause(tx, job, now)
        self.refresh(tx, job, now)
        return job

    def reconfigure(
        self,
        tx: Tx,
        job: Job,
        now: float,
        *,
        file_fields: dict[str, Any] | bool | None = False,
        declared: dict[str, Any] | bool | None = False,
    ) -> None:
        """Replace a configuration layer (``False`` leaves it as it is)."""
        old = self.config(job)
        if file_fields is not False:
            job.file_fields = file_fields if isinstance(file_fields, dict) else None
            job.in_file = file_fields is not None
        if declared is not False:
            job.declared_fields = declared if isinstance(declared, dict) else None
        new = self.config(job)
        if new.schedule != old.schedule:
            self._restart_cursor(job, new, now)
        if new.paused and not old.paused and job.state != "paused":
            self._pause(tx, job, now)
        elif old.paused and not new.paused and job.state == "paused":
            self._resume(tx, job, now)
        job.changed_at = now
        self.refresh(tx, job, now)

    def _restart_cursor(self, job: Job, cfg: JobConfig, start: float) -> None:
        sched = cfg.schedule
        if sched.kind == "cron":
            job.cursor = sched.at_or_after(start)
        elif sched.kind == "every":
            assert sched.every is not None
            job.cursor = start + sched.every
        else:
            job.cursor = None

    # ------------------------------------------------------------------ pause / resume
    def pause(self, tx: Tx, job: Job, now: float) -> None:
        if job.state != "paused":
            self._pause(tx, job, now)
            job.changed_at = now
            self.refresh(tx, job, now)

    def resume(self, tx: Tx, job: Job, now: float) -> None:
        if job.state == "paused":
            self._resume(tx, job, now)
            job.changed_at = now
            self.refresh(tx, job, now)

    def _pause(self, tx: Tx, job: Job, now: float) -> None:
        job.resume_state = _flip_state(job.state)
        self._set_state(tx, job, "paused", None, now)

    def _resume(self, tx: Tx, job: Job, now: float) -> None:
        # Slots that passed while paused are never missed: evaluation restarts now. Runs kept
        # being recorded while paused, so the thresholds apply to the streaks they left.
        cfg = self.config(job)
        self._restart_cursor(job, cfg, now)
        back = job.resume_state or "new"
        if back != "down" and job.bad_streak >= cfg.failure_threshold:
            back = "down"
        elif back == "down" and job.good_streak >= cfg.recovery_threshold:
            back = "up"
        self._set_state(tx, job, back, (job.reason or "failed") if back == "down" else None, now)
        job.resume_state = None

    # ------------------------------------------------------------------ events
    def prefetch(self, tx: Tx, events: Sequence[Event]) -> None:
        """Load what applying ``events`` will read (their jobs, runs, running runs, nearby
        slots and rollup hours) in a few statements for all of them. An optimisation only:
        whatever is not loaded here is read when it is needed."""
        tx.load_jobs(ev.job for ev in events)
        jobs = [(ev, job) for ev in events if (job := tx.job(ev.job)) is not None]
        if not jobs:
            return
        tx.load_runs((job.id, ev.run_id) for ev, job in jobs)
        tx.load_event_keys((job.id, ev.run_id, ev.type, _key_ts(ev)) for ev, job in jobs)
        tx.load_rollups((job.id, ev.ts) for ev, job in jobs)
        windows: dict[int, tuple[float, float]] = {}
        for ev, job in jobs:
            cfg = self.config(job)
            kind = cfg.schedule.kind
            if kind == "none":
                continue
            # A run is matched by its scheduled time, or its start (a finish-only run started
            # `duration` before its finish).
            t = ev.scheduled_for if ev.scheduled_for is not None else ev.ts
            first = min(t, ev.ts - ev.duration) if ev.duration is not None else t
            if kind == "cron":
                lo, hi = first - cfg.grace_bound, t + cfg.early_bound
            else:
                lo, hi = first, t
            if job.cursor is not None:
                lo, hi = min(lo, job.cursor), max(hi, job.cursor)
            if job.id in windows:
                lo, hi = min(lo, windows[job.id][0]), max(hi, windows[job.id][1])
            windows[job.id] = (lo, hi)
        # A window spanning days (a spooled event from long ago) is left to the reads.
        tx.load_slots({i: w for i, w in windows.items() if w[1] - w[0] <= _PREFETCH_SPAN})

    def apply(
        self, tx: Tx, ev: Event, now: float, *, create: bool = True, pair_latest: bool = False
    ) -> Applied:
        """Apply one validated event that arrived at ``now``.

        ``pair_latest``: a finish without a run id (a ping without ``rid``) closes the job's
        latest running run, or is a finish-only run when none is running.
        """
        job = tx.job(ev.job)
        if job is None:
            if not create:
                raise Rejected("job", f"unknown job {ev.job!r}", code="unknown_job")
            if tx.job_count() >= self.settings.job_cap:
                raise Rejected(
                    "job",
                    f"the job cap ({self.settings.job_cap}) is reached; {ev.job!r} was not "
                    "registered",
                    code="job_cap",
                )
            job = self.create_job(tx, ev.job, now, declared=ev.job_config)
        elif ev.job_config and not job.in_file:
            merged = {**(job.declared_fields or {}), **ev.job_config}
            if merged != job.declared_fields:
                self.reconfigure(tx, job, now, declared=merged)
        cfg = self.config(job)
        warning = None
        if ev.job_config and job.in_file:
            warning = f"job {job.name!r} is defined by the configuration file; job_config ignored"

        run_id = ev.run_id
        if pair_latest and ev.type in ("success", "failure", "cancelled", "log"):
            latest = tx.latest_running(job.id)
            # With none running, the ping starts a finish-only run under the id it came with.
            run_id = latest.run_id if latest is not None else ev.run_id
        key_ts = _key_ts(ev)
        if not tx.claim_event(job.id, run_id, ev.type, key_ts, now, ev.message):
            return Applied(duplicate=True, run_id=run_id)

        ts, scheduled_for, skewed = self._unskew(ev, now)
        job.last_event_at = max(job.last_event_at or now, now)
        job.silent = False
        job.changed_at = now
        arrival = _Arrival(ev, run_id, ts, scheduled_for, skewed, now)
        if ev.type == "start":
            self._on_start(tx, job, cfg, arrival)
        elif ev.type in ("success", "failure", "cancelled"):
            self._on_finish(tx, job, cfg, arrival)
        elif ev.type == "missed":
            assert scheduled_for is not None
            self._on_missed(tx, job, cfg, ev, scheduled_for, now)
        else:
            self._on_progress(tx, job, ev, run_id, ts)
        self.refresh(tx, job, now)
        return Applied(warning=warning, run_id=run_id)

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

    def _new_run(self, job: Job, run_id: str, started_at: float, now: float) -> Run:
        return Run(
            job_id=job.id,
            run_id=run_id,
            started_at=started_at,
            received_at=now,
            outcome="running",
            has_start=False,
            late=False,
            clock_skew=False,
            overlap=False,
            stale=False,
        )

    def _on_start(self, tx: Tx, job: Job, cfg: JobConfig, a: _Arrival) -> None:
        ev, run_id, ts, scheduled_for, skewed, now = a
        run = tx.run(job.id, run_id)
        if run is not None:
            # The finish came first: the run is already matched and closed; keep its start.
            run.has_start = True
            if run.finished_at is not None and ts <= run.finished_at:
                run.started_at = ts
            self._fill_details(run, ev)
            return
        run = self._new_run(job, run_id, ts, now)
        run.has_start = True
        run.scheduled_for = scheduled_for
        run.clock_skew = skewed
        self._fill_details(run, ev)
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

    def _on_finish(self, tx: Tx, job: Job, cfg: JobConfig, a: _Arrival) -> None:
        ev, run_id, ts, scheduled_for, skewed, now = a
        outcome = "retry" if ev.type == "failure" and ev.will_retry else ev.type
        run = tx.run(job.id, run_id)
        if run is None:
            # A finish-only run (`job && curl .../ping/job`): it started `duration` earlier,
            # or, with no duration, at some unknown time before it finished.
            start = ts - ev.duration if ev.duration is not None else ts
            run = self._new_run(job, run_id, start, now)
            run.scheduled_for = scheduled_for
            run.clock_skew = skewed
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
            job.last_start_at = max(job.last_start_at or start, start)
        self._fill_details(run, ev)
        duration = ev.duration if ev.duration is not None else max(0.0, ts - run.started_at)
        if run.outcome == "running":
            run.outcome = outcome
            run.finished_at = ts
            run.duration = duration
            self._count_outcome(tx, job, cfg, outcome, ts, duration)
            if outcome == "success":
                self._good(tx, job, cfg, now)
            elif outcome == "failure":
                self._bad(tx, job, cfg, "failed", now)
        elif run.outcome == "timeout" and run.late_outcome is None:
            # Recorded on the run and counted toward recovery; counters stay as they were.
            run.late_outcome = outcome
            run.finished_at = ts
            run.duration = duration
            if outcome == "success":
                job.last_success_at = max(job.last_success_at or ts, ts)
                self._good(tx, job, cfg, now)

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

    # ------------------------------------------------------------------ slots
    def _find_slot(
        self, tx: Tx, job: Job, cfg: JobConfig, t: float, *, earliest: bool
    ) -> float | None:
        sched = cfg.schedule
        if sched.kind == "cron":
            lo, hi = t - cfg.grace_bound, t + cfg.early_bound
            taken = tx.slots_between(job.id, lo, hi)
            candidates = [
                s
                for s in sched.between(lo, hi)
                if s not in taken and s - cfg.early_at(s) <= t <= s + cfg.grace_at(s)
            ]
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

    def _match_run(
        self, tx: Tx, job: Job, cfg: JobConfig, run: Run, t: float, *, earliest: bool, now: float
    ) -> None:
        every = cfg.schedule.every
        if every is not None:
            # Slots whose deadline this run's start has passed are missed whatever the order
            # the events arrive in; then the run re-anchors the series at its start + every.
            self._judge(tx, job, cfg, min(t, now), limit_to_now=True)
        slot = self._find_slot(tx, job, cfg, t, earliest=earliest)
        if slot is not None:
            tx.add_slot(
                Slot(
                    job_id=job.id,
                    slot=slot,
                    status="filled",
                    run_id=run.run_id,
                    count=1,
                    recorded_at=now,
                )
            )
            tx.rollup(job.id, slot).due += 1
            run.slot = slot
        else:
            run.late = self._latest_missed(tx, job, cfg, t)
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
        tx.add_slot(
            Slot(
                job_id=job.id,
                slot=slot,
                status="gap" if count > 1 else "missed",
                run_id=None,
                count=count,
                reason=reason,
                recorded_at=at,
            )
        )
        job.missed_total += count
        roll = tx.rollup(job.id, slot)
        roll.missed += count
        roll.due += count
        job.changed_at = max(job.changed_at, at)
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
            if cursor not in filled:
                count += 1
                last = cursor
            cursor = self._next_slot(cfg, cursor)
        job.cursor = cursor
        if count:
            self._record_missed(
                tx, job, cfg, s, last + cfg.grace_at(last), reason="gap", count=count
            )

    # ------------------------------------------------------------------ outcomes and states
    def _count_outcome(
        self, tx: Tx, job: Job, cfg: JobConfig, outcome: str, at: float, duration: float | None
    ) -> None:
        setattr(job, f"runs_{outcome}", getattr(job, f"runs_{outcome}") + 1)
        roll = tx.rollup(job.id, at)
        setattr(roll, outcome, getattr(roll, outcome) + 1)
        if outcome == "success":
            job.last_success_at = max(job.last_success_at or at, at)
        elif outcome in ("failure", "timeout"):
            job.last_failure_at = max(job.last_failure_at or at, at)
        if duration is not None and outcome != "timeout":
            job.last_duration = duration
            buckets = list(job.duration_buckets or [])
            if len(buckets) != len(cfg.buckets) + 1:
                buckets = [0] * (len(cfg.buckets) + 1)
            idx = next((i for i, b in enumerate(cfg.buckets) if duration <= b), len(cfg.buckets))
            buckets[idx] += 1
            job.duration_buckets = buckets
            job.duration_sum += duration
            job.duration_count += 1
            add_duration(roll, duration)

    def _set_state(self, tx: Tx, job: Job, state: str, reason: str | None, at: float) -> None:
        before, after = _flip_state(job.state), _flip_state(state)
        if before != after:
            # Flips are a timeline: never stamped before the previous one (a catch-up judges
            # deadlines that passed before a state change it already recorded).
            at = max(at, job.state_since)
            tx.add_flip(
                Flip(job_id=job.id, at=at, from_state=before, to_state=after, reason=reason)
            )
            job.state_since = at
        job.state = state
        job.reason = reason

    def _good(self, tx: Tx, job: Job, cfg: JobConfig, at: float) -> None:
        job.good_streak += 1
        job.bad_streak = 0
        if job.state == "new" or (
            job.state == "down" and job.good_streak >= cfg.recovery_threshold
        ):
            self._set_state(tx, job, "up", None, at)

    def _bad(
        self, tx: Tx, job: Job, cfg: JobConfig, reason: str, at: float, *, count: int = 1
    ) -> None:
        job.bad_streak += count
        job.good_streak = 0
        if job.state in ("paused", "down"):
            job.reason = reason  # the latest bad outcome (a paused job resumes down with it)
        elif job.bad_streak >= cfg.failure_threshold:
            self._set_state(tx, job, "down", reason, at)

    def _condition(self, tx: Tx, job: Job, reason: str, at: float) -> None:
        """Stale, silent, overlap: down at once, whatever the threshold."""
        job.good_streak = 0
        if job.state == "paused":
            return
        if job.state == "down":
            job.reason = reason
        else:
            self._set_state(tx, job, "down", reason, at)

    # ------------------------------------------------------------------ time
    def tick(self, tx: Tx, job: Job, now: float) -> None:
        """Everything the passing of time does to ``job`` up to ``now``."""
        if job.removed or job.state == "paused" or now < self.judge_from:
            self.refresh(tx, job, now)
            return
        cfg = self.config(job)
        before = (job.cursor, job.state, job.reason, job.running)
        self._judge(tx, job, cfg, now)
        for run in tx.running_runs(job.id):
            if run.deadline is not None and now > run.deadline:
                run.outcome = "timeout"
                self._count_outcome(tx, job, cfg, "timeout", run.deadline, None)
                self._bad(tx, job, cfg, "timed_out", run.deadline)
            elif cfg.heartbeat_timeout is not None and not run.stale:
                since = run.last_progress_at or run.started_at
                if now > since + cfg.heartbeat_timeout:
                    run.stale = True
                    self._condition(tx, job, "stale", since + cfg.heartbeat_timeout)
        if cfg.max_silence is not None and not job.silent:
            last = job.last_event_at or job.created_at
            if now > last + cfg.max_silence:
                job.silent = True
                self._condition(tx, job, "silent", last + cfg.max_silence)
        self.refresh(tx, job, now)
        if (job.cursor, job.state, job.reason, job.running) != before:
            job.changed_at = now

    def refresh(self, tx: Tx, job: Job, now: float) -> None:
        """Recompute derived fields: running gauges, `late`, and the next deadline."""
        cfg = self.config(job)
        running = tx.running_runs(job.id)
        job.running = len(running)
        job.oldest_running_start = min((r.started_at for r in running), default=None)
        if job.state in ("up", "late"):
            due = (
                job.cursor is not None and job.cursor <= now and tx.slot(job.id, job.cursor) is None
            )
            self._set_state(tx, job, "late" if due else "up", None, now)
        if job.removed or job.state == "paused":
            job.next_deadline = None
            return
        deadlines: list[float] = []
        if job.cursor is not None:
            if job.state == "up" and job.cursor > now:
                deadlines.append(job.cursor)
            deadlines.append(job.cursor + cfg.grace_at(job.cursor) + EPS)
        for run in running:
            if run.deadline is not None:
                deadlines.append(run.deadline + EPS)
            if cfg.heartbeat_timeout is not None and not run.stale:
                since = run.last_progress_at or run.started_at
                deadlines.append(since + cfg.heartbeat_timeout + EPS)
        if cfg.max_silence is not None and not job.silent:
            deadlines.append((job.last_event_at or job.created_at) + cfg.max_silence + EPS)
        nxt = min(deadlines, default=None)
        if nxt is not None and nxt < self.judge_from:
            nxt = self.judge_from
        job.next_deadline = nxt

    # ------------------------------------------------------------------ read-side helpers
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
