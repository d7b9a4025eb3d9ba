"""What every part of the engine shares: its settings, the events' arrival record, the
answers it gives, and each job's parsed configuration (cached while its layers are unchanged).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

from jobpulse.instrumentation.wire import Event

from .jobconfig import JobConfig, merge_fields
from .tables import Job

__all__ = [
    "DELIVERY_ALLOWANCE",
    "EPS",
    "OUTCOMES",
    "STATES",
    "Applied",
    "Arrival",
    "EngineBase",
    "EngineSettings",
    "Rejected",
    "key_ts",
]

EPS = 0.001  # deadlines are strict: a slot is judged once the clock is past slot + grace
DELIVERY_ALLOWANCE = 60.0  # a late-delivered start waits this long for its finish
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
    # A run with no max_runtime that sent nothing (start or progress) for this long is closed
    # as abandoned (0: never).
    abandon_after: float = 86400.0


class Arrival(NamedTuple):
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


def key_ts(ev: Event) -> float:
    """The timestamp part of an event's idempotency key: progress and log events repeat within
    a run, so their time tells them apart; a run has one start and one finish."""
    return ev.ts if ev.type in ("progress", "log") else 0.0


class EngineBase:
    def __init__(self, settings: EngineSettings | None = None, *, judge_from: float = 0.0) -> None:
        self.settings = settings or EngineSettings()
        # Slots, timeouts and silences are not judged before this instant (catch-up delay).
        self.judge_from = judge_from
        self._configs: dict[int, tuple[Any, JobConfig]] = {}
        # A job's cron slots near a time, by (job id, time), for the configuration they were
        # worked out for (see Slots._slot_window).
        self._slot_windows: dict[
            tuple[int, float], tuple[JobConfig, tuple[float, float, tuple[float, ...]]]
        ] = {}

    def config(self, job: Job) -> JobConfig:
        # Asked several times per event applied: the layers are read from the row's dict, not
        # through the ORM's attribute events, which cost more than the rest of this (an
        # attribute not loaded is read the ORM's way; so is a plain row, as the metrics
        # cache's, which has no dict).
        try:
            row = job.__dict__
            layers = row["file_fields"], row["declared_fields"]
            job_id = row["id"]
        except (AttributeError, KeyError):
            layers = job.file_fields, job.declared_fields
            job_id = job.id
        cached = self._configs.get(job_id)
        if cached is not None:
            if cached[0][0] is layers[0] and cached[0][1] is layers[1]:
                return cached[1]
            if cached[0] == layers:
                # Kept as this row's own objects, so the next call compares by identity.
                self._configs[job_id] = (layers, cached[1])
                return cached[1]
        fields, _ = merge_fields(*layers)
        cfg = JobConfig.from_fields(job.name, fields)
        self._configs[job_id] = (layers, cfg)
        return cfg
