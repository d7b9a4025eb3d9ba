"""What the status pages show, read from the store in one session (called in a thread).

Jobs are the API's own views (``views.full_job_view``), so the pages and ``/api/v1/jobs`` never
disagree; the page adds the fleet's counts by state, and for one job its effective
configuration with the source of each field, recent runs, missed slots, flips and 24 h stats.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from jobpulse.instrumentation.spec import JOB_FIELDS, format_duration
from jobpulse.instrumentation.wire import parse_ts

from ...domain.dependencies import DEFAULT_EARLY
from ...domain.jobconfig import Anomaly, JobConfig
from ...domain.rollup import stats_from_rows, window_start
from ...domain.tables import Flip, Job, Rollup, Run, Slot
from ...service import Sidecar
from ...store.outbox import OutboxStatus, outbox_status
from ..views import flip_view, full_job_view, full_job_views, run_view, slot_view
from .markup import STATES

__all__ = [
    "ChainLink",
    "ConfigRow",
    "Filters",
    "Fleet",
    "JobDetail",
    "Notifications",
    "read_fleet",
    "read_job",
    "read_notifications",
]

RECENT_RUNS: Final = 100
RECENT_ROWS: Final = 50
_DURATIONS: Final = frozenset(
    {"every", "grace", "early_tolerance", "max_runtime", "heartbeat_timeout", "max_silence"}
)


@dataclass(frozen=True, slots=True)
class Filters:
    state: str | None = None
    labels: tuple[tuple[str, str], ...] = ()
    removed: bool = False


@dataclass(frozen=True, slots=True)
class Notifications:
    """The status page's notifications section: receivers and what waits or failed."""

    receivers: list[str]
    outbox: OutboxStatus


@dataclass(frozen=True, slots=True)
class Fleet:
    now: float
    jobs: list[dict[str, Any]]
    counts: dict[str, int]
    notifications: Notifications | None = None


@dataclass(frozen=True, slots=True)
class ConfigRow:
    field: str
    value: str
    source: str


@dataclass(frozen=True, slots=True)
class ChainLink:
    """A job the page's job runs after (``upstream``) or that runs after it, with its state
    (``None`` for a name no job has yet)."""

    name: str
    upstream: bool
    state: str | None
    reason: str | None


@dataclass(frozen=True, slots=True)
class JobDetail:
    now: float
    job: dict[str, Any]
    config: list[ConfigRow]
    runs: list[dict[str, Any]]
    missed: list[dict[str, Any]]
    flips: list[dict[str, Any]]
    stats: dict[str, Any]
    chain: list[ChainLink]


def read_fleet(sidecar: Sidecar, session: Session, filters: Filters) -> Fleet:
    counts = dict.fromkeys(STATES, 0)
    for state, count in session.execute(
        select(Job.state, func.count()).where(Job.removed.is_(False)).group_by(Job.state)
    ):
        counts[state] = count
    query = select(Job).order_by(Job.name)
    if filters.state is not None:
        query = query.where(Job.state == filters.state)
    if not filters.removed:
        query = query.where(Job.removed.is_(False))
    chosen = [
        job
        for job in session.scalars(query)
        if all(sidecar.engine.config(job).labels.get(k) == v for k, v in filters.labels)
    ]
    jobs = full_job_views(sidecar, session, chosen)
    jobs.sort(key=lambda j: (STATES.index(j["state"]) if j["state"] in STATES else 9, j["name"]))
    return Fleet(
        now=sidecar.clock.now(),
        jobs=jobs,
        counts=counts,
        notifications=read_notifications(sidecar, session),
    )


def read_notifications(sidecar: Sidecar, session: Session) -> Notifications | None:
    """None when notifications are off and the outbox is empty."""
    receivers = [r.name for r in sidecar.notifier.config.receivers]
    outbox = outbox_status(session)
    if not receivers and not outbox.pending and not outbox.gave_up:
        return None
    return Notifications(receivers=receivers, outbox=outbox)


def read_job(sidecar: Sidecar, session: Session, name: str) -> JobDetail | None:
    job = session.scalars(select(Job).where(Job.name == name)).first()
    if job is None:
        return None
    now = sidecar.clock.now()
    view = full_job_view(sidecar, session, job)
    runs = session.scalars(
        select(Run)
        .where(Run.job_id == job.id)
        .order_by(Run.started_at.desc(), Run.id.desc())
        .limit(RECENT_RUNS)
    )
    missed = session.scalars(
        select(Slot)
        .where(Slot.job_id == job.id, Slot.status != "filled")
        .order_by(Slot.slot.desc())
        .limit(RECENT_ROWS)
    )
    flips = session.scalars(
        select(Flip)
        .where(Flip.job_id == job.id)
        .order_by(Flip.at.desc(), Flip.id.desc())
        .limit(RECENT_ROWS)
    )
    rollups = session.scalars(
        select(Rollup).where(Rollup.job_id == job.id, Rollup.hour >= window_start("24h", now))
    )
    nxt = view.get("next_expected")
    reference = parse_ts(nxt) if nxt else now
    return JobDetail(
        now=now,
        job=view,
        config=config_rows(sidecar.engine.config(job), view["config"], view["sources"], reference),
        runs=[run_view(r) for r in runs],
        missed=[slot_view(s) for s in missed],
        flips=[flip_view(f) for f in flips],
        stats=stats_from_rows(rollups).as_dict(),
        chain=read_chain(session, view["after"], view["downstream"]),
    )


def read_chain(session: Session, after: list[str], downstream: list[str]) -> list[ChainLink]:
    """The jobs a job runs after and those that run after it, with their states."""
    names = [*after, *downstream]
    states = (
        {
            name: (state, reason)
            for name, state, reason in session.execute(
                select(Job.name, Job.state, Job.reason).where(Job.name.in_(names))
            )
        }
        if names
        else {}
    )
    return [ChainLink(name, name in after, *states.get(name, (None, None))) for name in names]


def field_text(field: str, value: Any) -> str:
    """A job field's value as the configuration file would spell it."""
    if value is None:
        return "none"
    if field in _DURATIONS:
        return format_duration(float(value))
    if field == "labels":
        return ", ".join(f"{k}={v}" for k, v in sorted(value.items())) or "none"
    if field == "buckets":
        return ", ".join(format_duration(float(b)) for b in value)
    if field == "anomaly":
        return anomaly_text(value)
    if field == "after":
        return ", ".join(value) or "none"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def anomaly_text(value: Any) -> str:
    """``anomaly`` as written: off, or its keys over the defaults (factor 3, window 7d, ...)."""
    anomaly = Anomaly.of(value)
    if anomaly is None:
        return "off"
    return (
        f"factor {anomaly.factor:g}, window {format_duration(anomaly.window)}, "
        f"min_runs {anomaly.min_runs}"
    )


def config_rows(
    cfg: JobConfig, fields: Mapping[str, Any], sources: Mapping[str, str], reference: float
) -> list[ConfigRow]:
    """Every job field: the value set (and by which source) or the default in effect, with
    period-dependent defaults resolved at ``reference`` (the next expected slot)."""
    scheduled = cfg.scheduled
    max_runtime = cfg.max_runtime_at(reference)
    defaults = {
        "schedule": "none" if not cfg.schedule.every else "none (every is set)",
        "every": "none",
        "after": "none",
        "timezone": "UTC",
        "grace": f"{format_duration(cfg.grace_at(reference))} (10% of the period, 30s to 1h)"
        if scheduled
        else "none (unscheduled)",
        "early_tolerance": f"{format_duration(cfg.early_at(reference))} "
        "(10% of the period, at most 1m)"
        if scheduled
        else "none (unscheduled)",
        "max_runtime": f"{format_duration(max_runtime)} (90% of the period)"
        if max_runtime is not None
        else "none",
        "heartbeat_timeout": "none",
        "max_silence": "none",
        "failure_threshold": "1",
        "recovery_threshold": "1",
        "concurrency": "allow",
        "labels": "none",
        "paused": "false",
        "buckets": "job-sized defaults (0.5s to 1d)",
        "anomaly": anomaly_text(None),
    }
    if cfg.by_upstream:
        defaults["grace"] = "its upstream's grace for the tick"
        defaults["early_tolerance"] = (
            f"{format_duration(DEFAULT_EARLY)} before the upstream's success"
        )
    rows = []
    for field in JOB_FIELDS:
        if field in fields:
            rows.append(ConfigRow(field, field_text(field, fields[field]), sources[field]))
        else:
            rows.append(ConfigRow(field, defaults.get(field, "none"), "default"))
    return rows
