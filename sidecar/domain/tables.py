"""The store's tables (SQLAlchemy 2 declarative). Times are float epoch seconds, UTC.

- ``jobs``: one row a job: its configuration layers, its state, the evaluator's cursor and
  next deadline (indexed: the evaluator reads only due rows), and the counters and gauges
  ``/metrics`` exports, so they survive restarts and read the same on every replica.
- ``runs``: one row a run (an attempt), keyed by the client's ``run_id`` within the job.
- ``events``: idempotency keys, plus the text of log and progress heartbeats.
- ``slots``: one row a judged slot: ``filled`` by a run, ``missed``, a ``gap`` carrying a count,
  or ``skipped`` (with a reason: ``maintenance``, the slot was in a maintenance window, or
  ``upstream``, a job it runs after failed or missed that tick).
- ``job_upstreams``: one row per ``after:`` entry (job, upstream name), so the jobs that run
  after a job are found by an indexed read when its tick is decided.
- ``flips``: state changes among new, up, down and paused.
- ``rollups``: hourly per-job statistics, updated on write, kept longer than runs.
- ``maintenance``: maintenance windows created through the admin API (the file's are not
  stored), kept after they close so the engine and the API can still see them.
- ``inbox``: accepted events not yet applied (see ``inbox.py``): appended before the answer
  under their idempotency key, deleted by the applier in the transaction that applies them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.orm.base import instance_state
from sqlalchemy.orm.instrumentation import manager_of_class

__all__ = [
    "JOB_COLUMNS",
    "RUNNING",
    "Base",
    "EventKey",
    "Flip",
    "FlipRecord",
    "InboxRow",
    "Job",
    "JobUpstream",
    "MaintenanceRow",
    "Rollup",
    "Run",
    "Slot",
    "loaded",
    "new_row",
    "put",
]


# None is stored as SQL NULL, not as the JSON text ``null``: a NULL is read back without a
# decode, and every job row read carries several of these columns, mostly empty.
_JSON = JSON(none_as_null=True)


class Base(DeclarativeBase):
    pass


R = TypeVar("R", bound=Base)


def new_row(cls: type[R], values: dict[str, Any]) -> R:
    """A new (transient) ``cls`` holding ``values``, built without the constructor's attribute
    events: a new row's INSERT takes its values from the instance's dict, and the events (one
    history record per column) cost more than the engine's own work on the event that creates
    the row. Later changes are ordinary attribute sets."""
    row: R = manager_of_class(cls).new_instance()
    row.__dict__.update(values)
    return row


def loaded(job: Job) -> dict[str, Any]:
    """A job's column values, read without the ORM's attribute events (several dict lookups
    and a call each, about 25 times the dict's own: the engine reads some 30 per event it
    applies). Every column of a job a transaction holds is in its dict: read by a query, or
    added by ``Tx.add_job``, which fills in the ones left NULL. Changes go through ordinary
    attribute sets, which the dict then shows."""
    return job.__dict__


def put(job: Job, key: str, value: Any) -> None:
    """Set a job's column ``key``. The first change in a transaction is an ordinary attribute
    set, which keeps the loaded value as the column's history (``committed_state``: the
    session and ``Tx`` write the changed columns from it); a later one writes the dict, where
    the write takes the value from, at a tenth of the set's cost (the engine changes some
    five columns of a job per event, most of them already changed by an earlier event of the
    batch)."""
    if key in instance_state(job).committed_state:
        job.__dict__[key] = value
    else:
        setattr(job, key, value)


def set_new(row: Base, **values: Any) -> None:
    """Change a row that ``new_row`` made and a transaction keeps outside the session (a run or
    slot it added: ``Tx.add_run``, ``Tx.add_slot``), without the ORM's attribute events: the
    transaction writes, and compares to what it wrote, what the row's dict holds. A row read
    from the store takes ordinary attribute sets."""
    row.__dict__.update(values)


class Job(Base):
    __tablename__ = "jobs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    # Configuration layers: fields from the config file win over fields declared by clients
    # (job_config) or set through the API.
    file_fields: Mapped[dict[str, Any] | None] = mapped_column(_JSON, default=None)
    declared_fields: Mapped[dict[str, Any] | None] = mapped_column(_JSON, default=None)
    in_file: Mapped[bool] = mapped_column(Boolean, default=False)
    removed: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[float] = mapped_column(Float)
    last_event_at: Mapped[float | None] = mapped_column(Float, default=None)

    state: Mapped[str] = mapped_column(String(8), default="new")
    reason: Mapped[str | None] = mapped_column(String(16), default=None)
    state_since: Mapped[float] = mapped_column(Float)
    resume_state: Mapped[str | None] = mapped_column(String(8), default=None)
    bad_streak: Mapped[int] = mapped_column(Integer, default=0)
    good_streak: Mapped[int] = mapped_column(Integer, default=0)

    cursor: Mapped[float | None] = mapped_column(Float, default=None)
    silent: Mapped[bool] = mapped_column(Boolean, default=False)
    next_deadline: Mapped[float | None] = mapped_column(Float, default=None, index=True)

    runs_success: Mapped[int] = mapped_column(Integer, default=0)
    runs_failure: Mapped[int] = mapped_column(Integer, default=0)
    runs_timeout: Mapped[int] = mapped_column(Integer, default=0)
    runs_cancelled: Mapped[int] = mapped_column(Integer, default=0)
    runs_retry: Mapped[int] = mapped_column(Integer, default=0)
    missed_total: Mapped[int] = mapped_column(Integer, default=0)
    overlap_total: Mapped[int] = mapped_column(Integer, default=0)
    slow_total: Mapped[int] = mapped_column(Integer, default=0)
    # Slots recorded skipped, by reason (see domain/maintained.py and domain/dependencies.py).
    skipped_maintenance: Mapped[int] = mapped_column(Integer, default=0)
    skipped_upstream: Mapped[int] = mapped_column(Integer, default=0)
    last_success_at: Mapped[float | None] = mapped_column(Float, default=None)
    last_failure_at: Mapped[float | None] = mapped_column(Float, default=None)
    last_start_at: Mapped[float | None] = mapped_column(Float, default=None)
    last_duration: Mapped[float | None] = mapped_column(Float, default=None)
    duration_buckets: Mapped[list[int] | None] = mapped_column(_JSON, default=None)
    duration_sum: Mapped[float] = mapped_column(Float, default=0.0)
    duration_count: Mapped[int] = mapped_column(Integer, default=0)
    running: Mapped[int] = mapped_column(Integer, default=0)
    oldest_running_start: Mapped[float | None] = mapped_column(Float, default=None)
    changed_at: Mapped[float] = mapped_column(Float, index=True)
    # A maintenance window holds the job now (kept current by the evaluator; /metrics).
    in_maintenance: Mapped[bool] = mapped_column(Boolean, default=False)
    # A job with after: and no schedule of its own: the ticks of its upstreams it is waiting
    # on, due for, or was skipped for (see domain/dependencies.py).
    ticks: Mapped[list[dict[str, Any]] | None] = mapped_column(_JSON, default=None)


# A job's columns, by attribute (each named as its column).
JOB_COLUMNS = tuple(column.key for column in Job.__table__.columns)


class JobUpstream(Base):
    """One ``after:`` entry: ``job_id`` runs after the job named ``upstream`` (a name, not an
    id: the upstream may not exist yet)."""

    __tablename__ = "job_upstreams"

    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True)
    upstream: Mapped[str] = mapped_column(String(128), primary_key=True, index=True)


# A job's running runs: the condition of the partial index that holds them, and the words
# the queries for them use. A literal, as SQLite's planner uses a partial index only for a
# query that says what it holds (a bound value could be anything).
RUNNING = text("outcome = 'running'")


class Run(Base):
    __tablename__ = "runs"
    __table_args__ = (
        # Led by the run id: see migration 0009.
        UniqueConstraint("run_id", "job_id", name="uq_runs_key"),
        Index("ix_runs_job_started", "job_id", "started_at"),
        # A job's running runs (see RUNNING): a run that finished leaves the index.
        # Both of the lookup's terms, so SQLite's planner prefers it to ix_runs_job_started
        # whatever their order in the schema (migration 0009).
        Index(
            "ix_runs_running",
            "job_id",
            "outcome",
            sqlite_where=RUNNING,
            postgresql_where=RUNNING,
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    run_id: Mapped[str] = mapped_column(String(64))
    slot: Mapped[float | None] = mapped_column(Float, default=None)
    scheduled_for: Mapped[float | None] = mapped_column(Float, default=None)
    started_at: Mapped[float] = mapped_column(Float)
    has_start: Mapped[bool] = mapped_column(Boolean, default=False)
    finished_at: Mapped[float | None] = mapped_column(Float, default=None)
    outcome: Mapped[str] = mapped_column(String(10), default="running")
    late_outcome: Mapped[str | None] = mapped_column(String(10), default=None)
    deadline: Mapped[float | None] = mapped_column(Float, default=None)
    last_progress_at: Mapped[float | None] = mapped_column(Float, default=None)
    attempt: Mapped[int | None] = mapped_column(Integer, default=None)
    exit_code: Mapped[int | None] = mapped_column(Integer, default=None)
    error_type: Mapped[str | None] = mapped_column(String(128), default=None)
    error_message: Mapped[str | None] = mapped_column(Text, default=None)
    duration: Mapped[float | None] = mapped_column(Float, default=None)
    host: Mapped[str | None] = mapped_column(String(255), default=None)
    pid: Mapped[int | None] = mapped_column(Integer, default=None)
    trace_id: Mapped[str | None] = mapped_column(String(32), default=None)
    span_id: Mapped[str | None] = mapped_column(String(16), default=None)
    count: Mapped[int | None] = mapped_column(Integer, default=None)
    meta: Mapped[dict[str, Any] | None] = mapped_column("metadata", _JSON, default=None)
    log: Mapped[str | None] = mapped_column(Text, default=None)
    late: Mapped[bool] = mapped_column(Boolean, default=False)
    clock_skew: Mapped[bool] = mapped_column(Boolean, default=False)
    overlap: Mapped[bool] = mapped_column(Boolean, default=False)
    stale: Mapped[bool] = mapped_column(Boolean, default=False)
    # Slower than the job's anomaly factor x its p95 duration (see domain/anomaly.py).
    slow: Mapped[bool] = mapped_column(Boolean, default=False)
    received_at: Mapped[float] = mapped_column(Float)


class EventKey(Base):
    """Idempotency: start/finish types keyed on (run_id, type); progress/log also on ts."""

    __tablename__ = "events"
    __table_args__ = (UniqueConstraint("run_id", "job_id", "type", "key_ts", name="uq_events_key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    run_id: Mapped[str] = mapped_column(String(64))
    type: Mapped[str] = mapped_column(String(10))
    key_ts: Mapped[float] = mapped_column(Float)
    received_at: Mapped[float] = mapped_column(Float, index=True)
    message: Mapped[str | None] = mapped_column(Text, default=None)


class Slot(Base):
    __tablename__ = "slots"
    __table_args__ = (UniqueConstraint("job_id", "slot"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    slot: Mapped[float] = mapped_column(Float)
    status: Mapped[str] = mapped_column(String(8))  # filled | missed | gap | skipped
    run_id: Mapped[str | None] = mapped_column(String(64), default=None)
    count: Mapped[int] = mapped_column(Integer, default=1)
    reason: Mapped[str | None] = mapped_column(String(32), default=None)
    # A slot skipped for reason upstream: the job whose failure or miss caused it.
    upstream: Mapped[str | None] = mapped_column(String(128), default=None)
    recorded_at: Mapped[float] = mapped_column(Float)


class Flip(Base):
    __tablename__ = "flips"
    __table_args__ = (Index("ix_flips_job_at", "job_id", "at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    at: Mapped[float] = mapped_column(Float)
    from_state: Mapped[str] = mapped_column(String(8))
    to_state: Mapped[str] = mapped_column(String(8))
    reason: Mapped[str | None] = mapped_column(String(16), default=None)


@dataclass(frozen=True, slots=True)
class FlipRecord:
    """A flip the engine records: inserted into ``flips`` with its transaction's others (one
    ``executemany``) and never read back or changed before that, so a plain record, not an
    ORM instance (whose construction costs as much as the engine's work on a finish event)."""

    job_id: int
    at: float
    from_state: str
    to_state: str
    reason: str | None


class Rollup(Base):
    __tablename__ = "rollups"

    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True)
    hour: Mapped[int] = mapped_column(Integer, primary_key=True)
    success: Mapped[int] = mapped_column(Integer, default=0)
    failure: Mapped[int] = mapped_column(Integer, default=0)
    timeout: Mapped[int] = mapped_column(Integer, default=0)
    cancelled: Mapped[int] = mapped_column(Integer, default=0)
    retry: Mapped[int] = mapped_column(Integer, default=0)
    missed: Mapped[int] = mapped_column(Integer, default=0)
    due: Mapped[int] = mapped_column(Integer, default=0)
    dur_count: Mapped[int] = mapped_column(Integer, default=0)
    dur_sum: Mapped[float] = mapped_column(Float, default=0.0)
    dur_max: Mapped[float | None] = mapped_column(Float, default=None)
    dur_hist: Mapped[dict[str, int] | None] = mapped_column(_JSON, default=None)


class MaintenanceRow(Base):
    """A maintenance window created through the admin API: its target (job names and/or a
    label match) and its span ``[starts_at, ends_at)``; ending it early moves ``ends_at`` to
    that moment and sets ``ended_at``."""

    __tablename__ = "maintenance"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    jobs: Mapped[list[str] | None] = mapped_column(_JSON, default=None)
    match: Mapped[dict[str, str] | None] = mapped_column(_JSON, default=None)
    starts_at: Mapped[float] = mapped_column(Float)
    ends_at: Mapped[float] = mapped_column(Float, index=True)
    reason: Mapped[str | None] = mapped_column(Text, default=None)
    created_at: Mapped[float] = mapped_column(Float)
    ended_at: Mapped[float | None] = mapped_column(Float, default=None)


class InboxRow(Base):
    """An accepted event waiting for the applier. ``body`` holds the event's fields (JSON);
    ``job``, ``run_id``, ``type`` and ``key_ts`` repeat its idempotency key so the unique index
    decides duplicates among events not yet applied; ``flags`` carries how it arrived (1:
    may register its job, 2: a finish without a run id pairs with the latest running run)."""

    __tablename__ = "inbox"
    __table_args__ = (UniqueConstraint("run_id", "job", "type", "key_ts", name="uq_inbox_key"),)

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    job: Mapped[str] = mapped_column(String(128))
    run_id: Mapped[str] = mapped_column(String(64))
    type: Mapped[str] = mapped_column(String(10))
    key_ts: Mapped[float] = mapped_column(Float)
    ts: Mapped[float] = mapped_column(Float)
    arrived_at: Mapped[float] = mapped_column(Float)
    flags: Mapped[int] = mapped_column(Integer, default=0)
    body: Mapped[str] = mapped_column(Text)
