"""A job's effective configuration: the config file's fields over the declared ones, with the
defaults that depend on each slot's period resolved."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from jobpulse.instrumentation.spec import ANOMALY_DEFAULTS

from .schedule import Schedule, default_early_tolerance, default_grace, default_max_runtime

__all__ = ["DEFAULT_BUCKETS", "Anomaly", "JobConfig", "merge_fields"]

# Job-sized duration buckets (seconds): a job runs for seconds to hours, not milliseconds.
DEFAULT_BUCKETS: tuple[float, ...] = (
    0.5,
    1,
    2.5,
    5,
    10,
    30,
    60,
    120,
    300,
    600,
    1200,
    1800,
    3600,
    7200,
    14400,
    28800,
    86400,
)
_MAX_DEFAULT_EARLY = 60.0


def merge_fields(
    file_fields: Mapping[str, Any] | None, declared: Mapping[str, Any] | None
) -> tuple[dict[str, Any], dict[str, str]]:
    """Effective fields and which source set each one (the file wins on conflict)."""
    out: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for source, layer in (("declared", declared), ("file", file_fields)):
        for key, value in (layer or {}).items():
            out[key] = value
            sources[key] = source
    return out, sources


@dataclass(frozen=True, slots=True)
class Anomaly:
    """Slow-run detection: a finished run slower than ``factor`` x the job's p95 duration over
    the ``window`` (seconds) before it, once that window holds ``min_runs`` runs."""

    factor: float = ANOMALY_DEFAULTS["factor"]
    window: float = ANOMALY_DEFAULTS["window"]
    min_runs: int = int(ANOMALY_DEFAULTS["min_runs"])

    @staticmethod
    def of(value: object) -> Anomaly | None:
        """From the ``anomaly`` field: None when disabled (``false``), else the given keys
        over the defaults."""
        if value is False:
            return None
        keys = value if isinstance(value, Mapping) else {}
        return Anomaly(**{k: v for k, v in keys.items() if k in ANOMALY_DEFAULTS})


@dataclass(frozen=True, slots=True)
class JobConfig:
    name: str
    schedule: Schedule
    grace: float | None = None
    early_tolerance: float | None = None
    max_runtime: float | None = None
    heartbeat_timeout: float | None = None
    max_silence: float | None = None
    failure_threshold: int = 1
    recovery_threshold: int = 1
    concurrency: str = "allow"
    labels: dict[str, str] = field(default_factory=dict)
    paused: bool = False
    buckets: tuple[float, ...] = DEFAULT_BUCKETS
    anomaly: Anomaly | None = Anomaly()
    after: tuple[str, ...] = ()

    @staticmethod
    def from_fields(name: str, fields: Mapping[str, Any]) -> JobConfig:
        return JobConfig(
            name=name,
            schedule=Schedule.of(
                fields.get("schedule"), fields.get("every"), fields.get("timezone") or "UTC"
            ),
            grace=fields.get("grace"),
            early_tolerance=fields.get("early_tolerance"),
            max_runtime=fields.get("max_runtime"),
            heartbeat_timeout=fields.get("heartbeat_timeout"),
            max_silence=fields.get("max_silence"),
            failure_threshold=fields.get("failure_threshold") or 1,
            recovery_threshold=fields.get("recovery_threshold") or 1,
            concurrency=fields.get("concurrency") or "allow",
            labels=dict(fields.get("labels") or {}),
            paused=bool(fields.get("paused", False)),
            buckets=tuple(fields.get("buckets") or DEFAULT_BUCKETS),
            anomaly=Anomaly.of(fields.get("anomaly")),
            after=tuple(fields.get("after") or ()),
        )

    @property
    def scheduled(self) -> bool:
        return self.schedule.kind != "none"

    @property
    def by_upstream(self) -> bool:
        """Due when its upstreams succeed (``after:`` and no schedule of its own)."""
        return bool(self.after) and not self.scheduled

    def grace_at(self, slot: float) -> float:
        if self.grace is not None:
            return self.grace
        return default_grace(self.schedule.period(slot))

    def early_at(self, slot: float) -> float:
        if self.early_tolerance is not None:
            return self.early_tolerance
        return default_early_tolerance(self.schedule.period(slot))

    def max_runtime_at(self, slot: float | None) -> float | None:
        if self.max_runtime is not None:
            return self.max_runtime
        if slot is None or not self.scheduled:
            return None
        return default_max_runtime(self.schedule.period(slot))

    @property
    def early_bound(self) -> float:
        return self.early_tolerance if self.early_tolerance is not None else _MAX_DEFAULT_EARLY

    def match_window(self, t: float) -> tuple[float, float]:
        """Bounds on the cron slots whose window (early tolerance before, grace after) can
        hold time ``t``. A default grace is under half its slot's period, so of the slots at
        or before ``t`` only the latest can still hold ``t``: the search starts there rather
        than the longest default grace (an hour) back, where a five-minute job has a dozen."""
        if self.grace is not None:
            return t - self.grace, t + self.early_bound
        latest = self.schedule.at_or_before(t)
        return (t if latest is None else latest), t + self.early_bound
