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
A run with no ``max_runtime`` that will never finish is closed as abandoned (:mod:`.runs`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from jobpulse.instrumentation.wire import Event

from .anomaly import window_hour
from .base import EPS, OUTCOMES, STATES, Applied, Arrival, EngineSettings, Rejected
from .base import key_ts as _key_ts
from .dependencies import tick_deadlines, tick_due
from .jobconfig import JobConfig
from .runs import Runs
from .states import flip_state
from .tables import Job, loaded

if TYPE_CHECKING:
    from .transaction import Tx

__all__ = ["OUTCOMES", "STATES", "Applied", "Engine", "EngineSettings", "Rejected"]

_PREFETCH_SPAN = 2 * 86400.0


class Engine(Runs):
    """The engine's entry points: jobs created, reconfigured, paused and resumed; events
    applied; the passing of time. Slots, runs, states and thresholds are its bases
    (:mod:`.slots`, :mod:`.runs`, :mod:`.states`, :mod:`.thresholds`), one concept each.
    """

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
            slow_total=0,
            skipped_maintenance=0,
            skipped_upstream=0,
            duration_sum=0.0,
            duration_count=0,
            running=0,
            removed=False,
            silent=False,
        )
        tx.add_job(job)
        cfg = self.config(job)
        if cfg.after:
            tx.set_upstreams(job.id, cfg.after)
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
        if new.after != old.after:
            tx.set_upstreams(job.id, new.after)
        if new.schedule != old.schedule or new.after != old.after:
            self._restart_cursor(job, new, now)
        if new.paused and not old.paused and job.state != "paused":
            self._pause(tx, job, now)
        elif old.paused and not new.paused and job.state == "paused":
            self._resume(tx, job, now)
        job.changed_at = now
        self.refresh(tx, job, now)
        if new.labels != old.labels:
            tx.relabelled(job, old.labels)

    def _restart_cursor(self, job: Job, cfg: JobConfig, start: float) -> None:
        job.ticks = None  # a dependent's ticks are heard of again from its upstreams
        sched = cfg.schedule
        if sched.kind == "cron":
            job.cursor = sched.at_or_after(start)
        elif sched.kind == "every":
            assert sched.every is not None
            job.cursor = start + sched.every
        else:
            job.cursor = None

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
        job.resume_state = flip_state(job.state)
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

    def prefetch(self, tx: Tx, events: Sequence[Event]) -> None:
        """Load what applying ``events`` will read (their jobs, runs, running runs, nearby
        slots and rollup hours) in a few statements for all of them. An optimisation only:
        whatever is not loaded here is read when it is needed."""
        tx.load_jobs(ev.job for ev in events)
        # Each job's attributes are read once, not once per event (ORM reads add up here).
        ids: dict[str, int] = {}
        cursors: dict[str, float | None] = {}
        jobs: list[tuple[Event, Job]] = []
        for ev in events:
            name = ev.job
            job = tx.job(name)
            if job is None:
                continue
            if name not in ids:
                ids[name], cursors[name] = job.id, job.cursor
            jobs.append((ev, job))
        if not jobs:
            return
        tx.load_runs((ids[ev.job], ev.run_id) for ev, _ in jobs)
        tx.load_event_keys((ids[ev.job], ev.run_id, ev.type, _key_ts(ev)) for ev, _ in jobs)
        tx.load_rollups((ids[ev.job], ev.ts) for ev, _ in jobs)
        # A finish decides its job's tick for the jobs that run after it.
        finishing = ("success", "failure", "cancelled")
        tx.load_downstreams(ev.job for ev, _ in jobs if ev.type in finishing)
        windows: dict[int, tuple[float, float]] = {}
        seen: set[tuple[int, float, float]] = set()  # a job's events at the same times
        for ev, job in jobs:
            # A run is matched by its scheduled time, or its start (a finish-only run started
            # `duration` before its finish).
            t = ev.scheduled_for if ev.scheduled_for is not None else ev.ts
            first = min(t, ev.ts - ev.duration) if ev.duration is not None else t
            cursor, job_id = cursors[ev.job], ids[ev.job]
            if (job_id, first, t) in seen:
                continue
            seen.add((job_id, first, t))
            cfg = self.config(job)
            kind = cfg.schedule.kind
            if kind == "none":
                continue
            if kind == "cron":
                lo, hi = cfg.match_window(first)[0], cfg.match_window(t)[1]
            else:
                lo, hi = first, t
            if cursor is not None:
                lo, hi = min(lo, cursor), max(hi, cursor)
            if job_id in windows:
                lo, hi = min(lo, windows[job_id][0]), max(hi, windows[job_id][1])
            windows[job_id] = (lo, hi)
        # A window spanning days (a spooled event from long ago) is left to the reads.
        tx.load_slots({i: w for i, w in windows.items() if w[1] - w[0] <= _PREFETCH_SPAN})
        self._prefetch_durations(tx, jobs, ids)

    def _prefetch_durations(
        self, tx: Tx, jobs: list[tuple[Event, Job]], ids: dict[str, int]
    ) -> None:
        """The slow-run windows of the jobs finishing runs. They start from the hour the events
        arrive in, which prefetch does not know: the latest time the batch was sent at (or
        happened) stands for it; a wrong guess only costs the read it would have saved."""
        finishing = [(ev, job) for ev, job in jobs if ev.type in ("success", "failure")]
        if not finishing:
            return
        now = max(ev.sent_at if ev.sent_at is not None else ev.ts for ev, _ in finishing)
        by_name = {ev.job: job for ev, job in finishing}  # each job once
        windows = {
            ids[name]: window_hour(anomaly, now)
            for name, job in by_name.items()
            if (anomaly := self.config(job).anomaly) is not None
        }
        if windows:
            tx.load_duration_windows(windows)

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
        row = loaded(job)
        if not tx.claim_event(row["id"], run_id, ev.type, key_ts, now, ev.message):
            return Applied(duplicate=True, run_id=run_id)

        ts, scheduled_for, skewed = self._unskew(ev, now)
        # Set only what changes (an ORM set costs more than its read): a request's events
        # share their arrival.
        last = row["last_event_at"]
        if last is None or now > last:
            job.last_event_at = now
        if row["silent"]:
            job.silent = False
        if row["changed_at"] != now:
            job.changed_at = now
        arrival = Arrival(ev, run_id, ts, scheduled_for, skewed, now)
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

    def tick(self, tx: Tx, job: Job, now: float) -> None:
        """Everything the passing of time does to ``job`` up to ``now``."""
        if job.removed or job.state == "paused" or now < self.judge_from:
            self.refresh(tx, job, now)
            return
        cfg = self.config(job)
        before = (job.cursor, job.state, job.reason, job.running)
        self._judge(tx, job, cfg, now)
        for run in tx.running_runs(job.id):
            abandon_at = self._abandon_at(run)
            if run.deadline is not None and now > run.deadline:
                run.outcome = "timeout"
                self._count_outcome(tx, job, cfg, "timeout", run.deadline, None)
                self._bad(tx, job, cfg, "timed_out", run.deadline)
                self._run_decided(tx, job, cfg, run, ok=False, at=run.deadline)
            elif abandon_at is not None and now > abandon_at:
                self._abandon(tx, job, cfg, run, abandon_at)
            elif cfg.heartbeat_timeout is not None and not run.stale:
                since = run.last_progress_at or run.started_at
                stale_at = self._after_maintenance(tx, job, since + cfg.heartbeat_timeout)
                if now > stale_at:
                    run.stale = True
                    self._condition(tx, job, "stale", stale_at)
        if cfg.max_silence is not None and not job.silent:
            last = job.last_event_at or job.created_at
            silent_at = self._after_maintenance(tx, job, last + cfg.max_silence)
            if now > silent_at:
                job.silent = True
                self._condition(tx, job, "silent", silent_at)
        self.refresh(tx, job, now)
        if (job.cursor, job.state, job.reason, job.running) != before:
            job.changed_at = now

    def refresh(self, tx: Tx, job: Job, now: float) -> None:
        """Recompute derived fields: running gauges, `late`, and the next deadline."""
        # Done after every event applied: the job's columns are read from its dict (see
        # tables.loaded), and only what changes is set.
        cfg = self.config(job)
        row = loaded(job)
        job_id, cursor, state = row["id"], row["cursor"], row["state"]
        running = tx.running_runs(job_id)
        if row["running"] != len(running):
            job.running = len(running)
        oldest = min((r.started_at for r in running), default=None)
        if row["oldest_running_start"] != oldest:
            job.oldest_running_start = oldest
        ticks = row["ticks"]
        if state in ("up", "late"):
            due = (cursor is not None and cursor <= now and tx.slot(job_id, cursor) is None) or (
                ticks is not None and tick_due(ticks, now)
            )
            target = "late" if due else "up"
            if target != state or row["reason"] is not None:
                self._set_state(tx, job, target, None, now)
                state = target
        removed = row["removed"]
        change = self._refresh_maintenance(tx, job, now) if not removed else None
        if removed or state == "paused":
            job.next_deadline = change  # a paused job's in_maintenance is still kept current
            return
        deadlines: list[float] = [] if change is None else [change]
        if cursor is not None:
            if state == "up" and cursor > now:
                deadlines.append(cursor)
            deadlines.append(cursor + cfg.grace_at(cursor) + EPS)
        if ticks is not None:
            deadlines += tick_deadlines(ticks)
        for run in running:
            if run.deadline is not None:
                deadlines.append(run.deadline + EPS)
            elif (abandon_at := self._abandon_at(run)) is not None:
                deadlines.append(abandon_at + EPS)
            if cfg.heartbeat_timeout is not None and not run.stale:
                since = run.last_progress_at or run.started_at
                stale_at = self._after_maintenance(tx, job, since + cfg.heartbeat_timeout)
                deadlines.append(stale_at + EPS)
        if cfg.max_silence is not None and not row["silent"]:
            last = row["last_event_at"] or row["created_at"]
            deadlines.append(self._after_maintenance(tx, job, last + cfg.max_silence) + EPS)
        nxt = min(deadlines, default=None)
        if nxt is not None and nxt < self.judge_from:
            nxt = self.judge_from
        if row["next_deadline"] != nxt:
            job.next_deadline = nxt
