"""Job names, durations, schedules and job fields: validated once, used by both halves.

The sidecar's configuration file, the wire format's ``job_config`` and the decorator all go
through :func:`parse_job_fields`, so a field means the same thing wherever it is written.

Bounds: ``every`` is at least :data:`MIN_EVERY` (1 s: a shorter interval would have the
sidecar record a missed slot many times a second); every duration field is at most
:data:`MAX_JOB_DURATION` (366 days); thresholds fit a signed 64-bit integer. Names and
durations are ASCII: ``ſync`` is not ``sync``, and ``١٢`` is not 12.
"""

from __future__ import annotations

import math
import re
import zoneinfo
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Final

from cronsim import CronSim, CronSimError

from .errors import (
    InvalidDuration,
    InvalidJobConfig,
    InvalidName,
    InvalidSchedule,
    InvalidTimezone,
    unknown_fields,
)

__all__ = [
    "ANOMALY_DEFAULTS",
    "INT64_MAX",
    "JOB_FIELDS",
    "MAX_ANOMALY_WINDOW",
    "MAX_JOB_DURATION",
    "MIN_EVERY",
    "RESERVED_LABELS",
    "check_cron",
    "check_timezone",
    "format_duration",
    "parse_duration",
    "parse_job_fields",
    "parse_job_name",
]

_NAME_RE: Final = re.compile(r"[a-z0-9][a-z0-9._-]{0,127}")
_LABEL_RE: Final = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
_DURATION_PART_RE: Final = re.compile(r"([0-9]+(?:\.[0-9]+)?)([smhd])")
_SECONDS_RE: Final = re.compile(r"[0-9]+(?:\.[0-9]+)?")
_UNITS: Final = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}

INT64_MAX: Final = 2**63 - 1
"""The largest integer a store column holds (signed 64 bits)."""
MIN_EVERY: Final = 1.0
"""The shortest ``every`` interval, in seconds."""
MAX_JOB_DURATION: Final = 366 * 86400.0
"""The longest value of a job's duration fields (``every``, ``grace``, ``max_runtime`` ...),
in seconds: 366 days. Longer would be a typo, and deadlines must stay renderable times."""
_DURATION_FIELDS: Final = (
    "every",
    "grace",
    "early_tolerance",
    "max_runtime",
    "heartbeat_timeout",
    "max_silence",
)

RESERVED_LABELS: Final = frozenset(
    {"job", "instance", "job_name", "schedule", "timezone", "state", "outcome", "window", "le"}
)

# Every field a job may carry, in the order the docs list them.
JOB_FIELDS: Final = (
    "schedule",
    "every",
    "after",
    "timezone",
    "grace",
    "early_tolerance",
    "max_runtime",
    "heartbeat_timeout",
    "max_silence",
    "failure_threshold",
    "recovery_threshold",
    "concurrency",
    "labels",
    "paused",
    "buckets",
    "anomaly",
)

ANOMALY_DEFAULTS: Final = {"factor": 3.0, "window": 7 * 86400.0, "min_runs": 20}
"""Slow-run detection when a job does not configure ``anomaly``: a finished run slower than
``factor`` times the job's p95 duration over ``window`` (at least ``min_runs`` runs in it)."""
MAX_ANOMALY_WINDOW: Final = 30 * 86400.0
"""The longest ``anomaly.window``: the p95 is read from hourly rollups, 24 a day."""


def parse_job_name(value: object) -> str:
    """Return the job name with ASCII letters lower-cased, or raise :class:`InvalidName`.

    Only ASCII is folded: ``str.casefold`` (and ``str.lower``) would turn look-alikes such as
    ``ſync`` or the Kelvin sign into ``sync`` and ``k``, so one job could be reported under
    another's name."""
    if not isinstance(value, str):
        raise InvalidName(f"job name must be a string, got {type(value).__name__} {value!r}")
    name = value.lower() if value.isascii() else value
    if not _NAME_RE.fullmatch(name):
        raise InvalidName(
            f"job name {value!r} is invalid: use 1-128 characters from a-z, 0-9, '.', '_' "
            "and '-', starting with a letter or digit"
        )
    return name


def parse_duration(value: object, *, what: str = "duration") -> float:
    """Seconds from an int/float or text such as ``90s``, ``15m``, ``1h30m``, ``2d``."""
    if isinstance(value, bool):
        raise InvalidDuration(f"{what} {value!r} is not a duration: use seconds or text like 1h30m")
    if isinstance(value, int | float):
        seconds = float(value) if abs(value) < 1e300 else math.inf
    elif isinstance(value, str):
        text = value.strip().lower()
        if _SECONDS_RE.fullmatch(text):
            seconds = float(text)
        else:
            pos, seconds = 0, 0.0
            for match in _DURATION_PART_RE.finditer(text):
                if match.start() != pos:
                    break
                seconds += float(match.group(1)) * _UNITS[match.group(2)]
                pos = match.end()
            if pos != len(text) or not text:
                raise InvalidDuration(
                    f"{what} {value!r} is not a duration: use seconds (90) or numbers with units "
                    "s, m, h, d (90s, 15m, 1h30m, 2d)"
                )
    else:
        raise InvalidDuration(f"{what} {value!r} is not a duration: use seconds or text like 1h30m")
    if not math.isfinite(seconds) or seconds <= 0:
        raise InvalidDuration(f"{what} {value!r} must be a positive, finite duration")
    return seconds


def format_duration(seconds: float) -> str:
    """Shortest exact ``1h30m``-style text for ``seconds`` (fractions stay in seconds)."""
    if seconds != int(seconds):
        return f"{seconds:g}s"
    rest, parts = int(seconds), []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if rest >= size:
            parts.append(f"{rest // size}{unit}")
            rest %= size
    return "".join(parts) or "0s"


def check_timezone(value: object) -> str:
    """Return ``value`` if it names an IANA zone, else raise :class:`InvalidTimezone`."""
    if not isinstance(value, str) or not value:
        raise InvalidTimezone(f"timezone {value!r} must be an IANA zone name such as Europe/Riga")
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
        raise InvalidTimezone(
            f"timezone {value!r} is not an IANA zone name (for example UTC, Europe/Riga, "
            "America/New_York)"
        ) from exc
    return value


def check_cron(value: object) -> str:
    """Return the normalised expression if cronsim accepts it, else raise InvalidSchedule."""
    if not isinstance(value, str):
        raise InvalidSchedule(f"schedule {value!r} must be a cron expression string")
    expr = " ".join(value.split())
    if len(expr.split()) not in (5, 6):
        raise InvalidSchedule(
            f"schedule {value!r} has {len(expr.split())} fields: a cron expression has 5 "
            "(minute hour day-of-month month day-of-week) or 6 (seconds first)"
        )
    try:
        it = CronSim(expr, datetime(2000, 1, 1, tzinfo=UTC))
        next(it)
    except CronSimError as exc:
        raise InvalidSchedule(f"schedule {value!r} is not a valid cron expression: {exc}") from exc
    except StopIteration as exc:
        raise InvalidSchedule(f"schedule {value!r} never fires") from exc
    return expr


def _shown(value: object) -> str:
    """``repr(value)``, with an integer too long to be worth echoing summarised."""
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 10**30:
        return f"an integer of {len(str(abs(value)))} digits"
    return repr(value)


def _int_field(job: str, field: str, value: object, *, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value <= INT64_MAX:
        raise InvalidJobConfig(
            f"job {job!r}: {field} must be an integer >= {minimum} and <= {INT64_MAX}, "
            f"got {_shown(value)}",
            job=job,
            field=field,
        )
    return value


def _duration_field(job: str, field: str, value: object) -> float:
    seconds = parse_duration(value, what=f"job {job!r}: {field}")
    if field == "grace" and seconds < 1:
        raise InvalidDuration(f"job {job!r}: grace {value!r} must be at least 1s")
    if field == "every" and seconds < MIN_EVERY:
        raise InvalidDuration(
            f"job {job!r}: every {_shown(value)} is shorter than the minimum interval of "
            f"{format_duration(MIN_EVERY)}; use every: 1s or longer"
        )
    if seconds > MAX_JOB_DURATION:
        raise InvalidDuration(
            f"job {job!r}: {field} {_shown(value)} is longer than the maximum of "
            f"{format_duration(MAX_JOB_DURATION)} (366 days)"
        )
    return seconds


def _labels(job: str, value: object) -> dict[str, str]:
    if not isinstance(value, Mapping):
        raise InvalidJobConfig(
            f"job {job!r}: labels must be a mapping of label names to strings, got {value!r}",
            job=job,
            field="labels",
        )
    labels: dict[str, str] = {}
    for key, val in value.items():
        if not isinstance(key, str) or not _LABEL_RE.fullmatch(key) or key.startswith("__"):
            raise InvalidJobConfig(
                f"job {job!r}: label name {key!r} is not a Prometheus label name "
                "([a-zA-Z_][a-zA-Z0-9_]*, not starting with __)",
                job=job,
                field="labels",
            )
        if key in RESERVED_LABELS:
            raise InvalidJobConfig(
                f"job {job!r}: label name {key!r} is reserved; reserved names are "
                f"{', '.join(sorted(RESERVED_LABELS))}",
                job=job,
                field="labels",
            )
        if isinstance(val, bool) or not isinstance(val, str | int | float):
            raise InvalidJobConfig(
                f"job {job!r}: label {key!r} has value {val!r}; label values are strings",
                job=job,
                field="labels",
            )
        labels[key] = str(val)
    return labels


def _buckets(job: str, value: object) -> list[float]:
    if not isinstance(value, list) or not value:
        raise InvalidJobConfig(
            f"job {job!r}: buckets {value!r} must be a non-empty list of durations",
            job=job,
            field="buckets",
        )
    out = [parse_duration(v, what=f"job {job!r}: bucket") for v in value]
    if out != sorted(set(out)):
        raise InvalidJobConfig(
            f"job {job!r}: buckets {value!r} must be strictly increasing", job=job, field="buckets"
        )
    return out


def _anomaly(job: str, value: object) -> dict[str, Any] | bool:
    """``false``/``off`` (disabled), ``true``/``on`` (the defaults), or a mapping of ``factor``,
    ``window`` and ``min_runs`` (the keys given, normalised; the others keep their defaults)."""
    if value is False or value == "off":
        return False
    if value is True or value == "on":
        return {}
    if not isinstance(value, Mapping):
        raise InvalidJobConfig(
            f"job {job!r}: anomaly {_shown(value)} must be false (or off) to disable slow-run "
            "detection, or a mapping such as {factor: 3, window: 7d, min_runs: 20}",
            job=job,
            field="anomaly",
        )
    out: dict[str, Any] = {}
    for key, item in value.items():
        if key == "factor":
            ok = isinstance(item, int | float) and not isinstance(item, bool)
            if not ok or not 1 <= item <= 1e6 or not math.isfinite(item):
                raise InvalidJobConfig(
                    f"job {job!r}: anomaly.factor must be a number from 1 to 1000000, "
                    f"got {_shown(item)}",
                    job=job,
                    field="anomaly",
                )
            out[key] = float(item)
        elif key == "window":
            seconds = parse_duration(item, what=f"job {job!r}: anomaly.window")
            if not 3600 <= seconds <= MAX_ANOMALY_WINDOW:
                raise InvalidDuration(
                    f"job {job!r}: anomaly.window {_shown(item)} must be from 1h to "
                    f"{format_duration(MAX_ANOMALY_WINDOW)}"
                )
            out[key] = seconds
        elif key == "min_runs":
            out[key] = _int_field(job, "anomaly.min_runs", item, minimum=1)
        else:
            raise InvalidJobConfig(
                f"job {job!r}: unknown anomaly key {key!r}; accepted keys are factor, window "
                "and min_runs",
                job=job,
                field="anomaly",
            )
    return out


def _after(job: str, value: object) -> list[str]:
    """The jobs ``job`` runs after: one name or a list of names, each a valid job name, none
    twice, not ``job`` itself (a job after itself is the shortest cycle)."""
    names = [value] if isinstance(value, str) else value
    if not isinstance(names, list):
        raise InvalidJobConfig(
            f"job {job!r}: after {_shown(value)} must be a job name or a list of job names, "
            "such as [extract] or [extract, load]",
            job=job,
            field="after",
        )
    out: list[str] = []
    for item in names:
        try:
            name = parse_job_name(item)
        except InvalidName as exc:
            raise InvalidJobConfig(f"job {job!r}: after: {exc}", job=job, field="after") from exc
        if name == job:
            raise InvalidJobConfig(
                f"job {job!r}: after names the job itself, a cycle ({job} → {job}); a job runs "
                "after other jobs",
                job=job,
                field="after",
            )
        if name in out:
            raise InvalidJobConfig(
                f"job {job!r}: after names {name!r} twice", job=job, field="after"
            )
        out.append(name)
    return out


def parse_job_fields(job: str, raw: Mapping[str, Any]) -> dict[str, Any]:
    """Validate the job fields present in ``raw``; return them normalised.

    Durations become float seconds, ``schedule`` a whitespace-normalised cron expression,
    ``every`` seconds, ``after`` a list of job names. Only the fields given are returned (a
    partial update is valid); an unknown field raises, naming the accepted ones.
    """
    out: dict[str, Any] = {}
    for field, value in raw.items():
        if field not in JOB_FIELDS:
            raise InvalidJobConfig(
                f"job {job!r}: {unknown_fields([field], ('name', *JOB_FIELDS))}",
                job=job,
                field=field,
            )
        try:
            if value is None and (field == "schedule" or field in _DURATION_FIELDS):
                out[field] = None
            elif field == "schedule":
                out[field] = check_cron(value)
            elif field == "after":
                out[field] = [] if value is None else _after(job, value)
            elif field == "timezone":
                out[field] = check_timezone(value)
            elif field in _DURATION_FIELDS:
                out[field] = _duration_field(job, field, value)
            elif field in ("failure_threshold", "recovery_threshold"):
                out[field] = _int_field(job, field, value, minimum=1)
            elif field == "concurrency":
                if value not in ("allow", "forbid"):
                    raise InvalidJobConfig(
                        f"job {job!r}: concurrency {value!r} must be 'allow' or 'forbid'",
                        job=job,
                        field=field,
                    )
                out[field] = value
            elif field == "labels":
                out[field] = _labels(job, value)
            elif field == "paused":
                if not isinstance(value, bool):
                    raise InvalidJobConfig(
                        f"job {job!r}: paused {value!r} must be true or false", job=job, field=field
                    )
                out[field] = value
            elif field == "buckets":
                out[field] = _buckets(job, value)
            elif field == "anomaly":
                out[field] = None if value is None else _anomaly(job, value)
        except InvalidJobConfig:
            raise
        except (InvalidDuration, InvalidSchedule, InvalidTimezone) as exc:
            text = str(exc)
            if not text.startswith(f"job {job!r}"):
                text = f"job {job!r}: {text}"
            raise InvalidJobConfig(text, job=job, field=field) from exc
    if out.get("schedule") and out.get("every"):
        raise InvalidJobConfig(
            f"job {job!r}: give either schedule or every, not both", job=job, field="every"
        )
    return out
