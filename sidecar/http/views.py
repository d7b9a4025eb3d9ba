"""JSON shapes of jobs, runs, slots, flips and maintenance windows (the API, the status page and
replay share them)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from jobpulse.instrumentation.wire import format_ts

from ..domain.engine import Engine
from ..domain.jobconfig import merge_fields
from ..domain.maintenance import Window, is_open
from ..domain.tables import Flip, Job, JobUpstream, MaintenanceRow, Run, Slot
from ..store.maintenance import list_windows

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from ..service import Sidecar

__all__ = [
    "Maintenance",
    "api_window_view",
    "downstreams_of",
    "flip_view",
    "full_job_view",
    "full_job_views",
    "job_view",
    "run_view",
    "slot_view",
    "ts",
    "window_view",
]


def ts(value: float | None) -> str | None:
    return format_ts(value) if value is not None else None


def job_view(
    engine: Engine,
    job: Job,
    *,
    now: float,
    next_expected: float | None,
    ratios: dict[str, float | None] | None = None,
    downstream: list[str] | None = None,
    maintenance: Maintenance | None = None,
) -> dict[str, Any]:
    cfg = engine.config(job)
    held = maintenance.holding(job, cfg.labels) if maintenance is not None else []
    fields, sources = merge_fields(job.file_fields, job.declared_fields)
    return {
        "name": job.name,
        "state": job.state,
        "reason": job.reason,
        "state_since": ts(job.state_since),
        "removed": job.removed,
        "schedule": cfg.schedule.cron,
        "every": cfg.schedule.every,
        "timezone": cfg.schedule.timezone,
        "labels": cfg.labels,
        "config": fields,
        "sources": sources,
        "created_at": ts(job.created_at),
        "last_event_at": ts(job.last_event_at),
        "last_success": ts(job.last_success_at),
        "last_failure": ts(job.last_failure_at),
        "last_start": ts(job.last_start_at),
        "last_duration": job.last_duration,
        "next_expected": ts(next_expected),
        "expected_interval": engine.expected_interval(job, now),
        "running": job.running,
        "oldest_running_start": ts(job.oldest_running_start),
        "consecutive_failures": job.bad_streak,
        "runs": {
            "success": job.runs_success,
            "failure": job.runs_failure,
            "timeout": job.runs_timeout,
            "cancelled": job.runs_cancelled,
            "retry": job.runs_retry,
        },
        "missed": job.missed_total,
        "overlaps": job.overlap_total,
        "slow_runs": job.slow_total,
        "skipped": {"maintenance": job.skipped_maintenance, "upstream": job.skipped_upstream},
        "after": list(cfg.after),
        "downstream": downstream or [],
        "in_maintenance": is_open(held, now) if maintenance is not None else job.in_maintenance,
        "maintenance": [view for w in held if (view := window_view(w, now)) is not None],
        **(
            {"success_ratio_24h": ratios.get("success"), "miss_ratio_24h": ratios.get("miss")}
            if ratios is not None
            else {}
        ),
    }


def run_view(run: Run) -> dict[str, Any]:
    return {
        "run_id": run.run_id,
        "slot": ts(run.slot),
        "scheduled_for": ts(run.scheduled_for),
        "started_at": ts(run.started_at),
        "finished_at": ts(run.finished_at),
        "outcome": run.outcome,
        "late_outcome": run.late_outcome,
        "duration": run.duration,
        "attempt": run.attempt,
        "exit_code": run.exit_code,
        "error_type": run.error_type,
        "error_message": run.error_message,
        "host": run.host,
        "pid": run.pid,
        "trace_id": run.trace_id,
        "span_id": run.span_id,
        "count": run.count,
        "metadata": run.meta,
        "log": run.log,
        "flags": [
            flag
            for flag in ("late", "clock_skew", "overlap", "stale", "slow")
            if getattr(run, flag)
        ],
    }


def slot_view(slot: Slot) -> dict[str, Any]:
    return {
        "slot": ts(slot.slot),
        "status": slot.status,
        "run_id": slot.run_id,
        "count": slot.count,
        "reason": slot.reason,
        "upstream": slot.upstream,
    }


def flip_view(flip: Flip) -> dict[str, Any]:
    return {"at": ts(flip.at), "from": flip.from_state, "to": flip.to_state, "reason": flip.reason}


def window_view(window: Window, now: float) -> dict[str, Any] | None:
    """A window as the API lists it: its span open now, else its next one (None: it will not
    open again)."""
    span = window.next_span(now)
    if span is None:
        return None
    source, _, ident = window.key.partition(":")
    return {
        "id": int(ident) if source == "api" else None,
        "name": ident if source == "config" else None,
        "source": source,
        "jobs": sorted(window.jobs),
        "match": dict(window.match),
        "schedule": window.schedule.cron if window.schedule is not None else None,
        "timezone": window.schedule.timezone if window.schedule is not None else "UTC",
        "duration": window.duration,
        "start": ts(span[0]),
        "end": ts(span[1]),
        "active": span[0] <= now < span[1],
        "reason": window.reason,
    }


def api_window_view(row: MaintenanceRow, now: float) -> dict[str, Any]:
    """A window created through the API, also once it has closed."""
    return {
        "id": row.id,
        "name": None,
        "source": "api",
        "jobs": sorted(row.jobs or ()),
        "match": dict(row.match or {}),
        "schedule": None,
        "timezone": "UTC",
        "duration": row.ends_at - row.starts_at,
        "start": ts(row.starts_at),
        "end": ts(row.ends_at),
        "active": row.starts_at <= now < row.ends_at,
        "reason": row.reason,
        "created_at": ts(row.created_at),
        "ended_at": ts(row.ended_at),
    }


class Maintenance:
    """The maintenance windows as of one read: the file's and the API's still to close."""

    def __init__(self, sidecar: Sidecar, session: Session, now: float) -> None:
        api = [Window.from_row(row) for row in list_windows(session, since=now)]
        self.windows: list[Window] = [*sidecar.engine.windows, *api]

    def holding(self, job: Job, labels: dict[str, str]) -> list[Window]:
        return [w for w in self.windows if w.holds(job.name, labels)]


def full_job_views(sidecar: Sidecar, session: Session, jobs: list[Job]) -> list[dict[str, Any]]:
    """Jobs as ``GET /api/v1/jobs`` and the status page show them, with their next expected run
    and 24-hour ratios: a few grouped queries for the whole list, not a few per job."""
    now = sidecar.clock.now()
    ids = [job.id for job in jobs]
    ratios = sidecar.cache.ratios(session, ids, now) if ids else {}
    filled = sidecar.cache.filled_cursors(session, ids) if ids else set()
    downstream = downstreams_of(session, [job.name for job in jobs])
    maintenance = Maintenance(sidecar, session, now)
    views = []
    for job in jobs:
        success, miss = ratios.get(job.id, {}).get("24h", (None, None))
        views.append(
            job_view(
                sidecar.engine,
                job,
                now=now,
                next_expected=sidecar.cache.next_expected(session, job, filled=job.id in filled),
                ratios={"success": success, "miss": miss},
                downstream=downstream.get(job.name),
                maintenance=maintenance,
            )
        )
    return views


def downstreams_of(session: Session, names: list[str]) -> dict[str, list[str]]:
    """For each job name, the jobs whose ``after:`` names it (one grouped read), by name."""
    found: dict[str, list[str]] = {}
    for start in range(0, len(names), 500):
        query = (
            select(JobUpstream.upstream, Job.name)
            .join(Job, Job.id == JobUpstream.job_id)
            .where(JobUpstream.upstream.in_(names[start : start + 500]))
            .order_by(Job.name)
        )
        for upstream, name in session.execute(query):
            found.setdefault(upstream, []).append(name)
    return found


def full_job_view(sidecar: Sidecar, session: Session, job: Job) -> dict[str, Any]:
    """One job, exactly as the list shows it."""
    return full_job_views(sidecar, session, [job])[0]
