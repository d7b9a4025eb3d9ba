"""Maintenance windows as they are written: the ``maintenance:`` section of ``jobpulse.yaml``
and the target of ``POST /api/v1/maintenance``, validated into :class:`WindowSpec`.

A window names its target (``jobs: [names]`` and/or ``match: {label: value}``; a job is in the
target when it is named or when its labels hold every pair of ``match``) and its times: either
one-off (``start:`` ISO 8601 + ``duration:``) or recurring (``schedule:`` cron + ``duration:``),
in ``timezone:`` (default UTC). What a window does is the engine's
(:mod:`jobpulse.sidecar.domain.maintenance`).

Errors name the window and the field, e.g.
``maintenance[1] (db-upgrade): duration '2x' is not a duration: ...``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any, Final
from zoneinfo import ZoneInfo

from jobpulse.instrumentation.errors import (
    ConfigError,
    InvalidDuration,
    InvalidName,
    InvalidSchedule,
    InvalidTimezone,
    unknown_fields,
)
from jobpulse.instrumentation.spec import (
    check_cron,
    check_timezone,
    format_duration,
    parse_duration,
    parse_job_name,
)

__all__ = [
    "MAX_WINDOW_DURATION",
    "WINDOW_FIELDS",
    "WindowSpec",
    "parse_match",
    "parse_target_jobs",
    "parse_window_duration",
    "parse_windows",
]

WINDOW_FIELDS: Final = ("name", "jobs", "match", "start", "schedule", "duration", "timezone")
MAX_WINDOW_DURATION: Final = 31 * 86400.0
"""The longest window: 31 days. Longer is a job to pause, not a maintenance window."""
_NAME_RE: Final = re.compile(r"[a-z0-9][a-z0-9._-]{0,127}")
_LABEL_RE: Final = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")


@dataclass(frozen=True, slots=True)
class WindowSpec:
    """One validated window of the configuration file. ``start`` (epoch seconds) for a one-off
    window, ``schedule`` (a cron expression) for a recurring one; ``duration`` in seconds."""

    name: str
    jobs: tuple[str, ...] = ()
    match: tuple[tuple[str, str], ...] = ()
    start: float | None = None
    schedule: str | None = None
    duration: float = 3600.0
    timezone: str = "UTC"

    def as_dict(self) -> dict[str, Any]:
        """Plain data, for the generators and the API."""
        return {
            "name": self.name,
            "jobs": list(self.jobs),
            "match": dict(self.match),
            "start": self.start,
            "schedule": self.schedule,
            "duration": self.duration,
            "timezone": self.timezone,
        }


def _error(where: str, text: str) -> ConfigError:
    """``where: text`` (``where`` empty: the API, whose answer names the field alone)."""
    return ConfigError(f"{where}: {text}" if where else text)


def parse_target_jobs(value: object, *, where: str = "") -> tuple[str, ...]:
    """``jobs:``: a non-empty list of job names."""
    if not isinstance(value, list) or not value:
        raise _error(where, f"jobs {value!r} must be a non-empty list of job names")
    names: list[str] = []
    for index, raw in enumerate(value):
        try:
            names.append(parse_job_name(raw))
        except InvalidName as exc:
            raise _error(where, f"jobs[{index}]: {exc}") from exc
    return tuple(sorted(set(names)))


def parse_match(value: object, *, where: str = "") -> tuple[tuple[str, str], ...]:
    """``match:``: a non-empty mapping of job label names to values."""
    if not isinstance(value, Mapping) or not value:
        raise _error(
            where,
            f"match {value!r} must be a non-empty mapping of job label names to values, e.g. "
            "{team: data}",
        )
    pairs: list[tuple[str, str]] = []
    for key, val in value.items():
        if not isinstance(key, str) or not _LABEL_RE.fullmatch(key) or key.startswith("__"):
            raise _error(
                where,
                f"match label {key!r} is not a label name ([a-zA-Z_][a-zA-Z0-9_]*, not "
                "starting with __)",
            )
        if isinstance(val, bool) or not isinstance(val, str | int | float):
            raise _error(where, f"match label {key!r} has value {val!r}; use a string")
        pairs.append((key, str(val)))
    return tuple(sorted(pairs))


def parse_window_duration(value: object, *, where: str = "") -> float:
    try:
        seconds = parse_duration(value, what="duration")
    except InvalidDuration as exc:
        raise _error(where, str(exc)) from exc
    if seconds > MAX_WINDOW_DURATION:
        raise _error(
            where,
            f"duration {value!r} is longer than the maximum of "
            f"{format_duration(MAX_WINDOW_DURATION)}; pause the job instead",
        )
    return seconds


def _start(value: object, timezone: str, *, where: str) -> float:
    """ISO 8601 text (or a YAML timestamp); without an offset it is read in ``timezone``."""
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.strip())
        except ValueError:
            raise ConfigError(
                f"{where}: start {value!r} is not an ISO 8601 date and time; write e.g. "
                "2026-12-05T02:00:00+02:00 (without an offset it is read in the timezone)"
            ) from None
    elif isinstance(value, date):
        moment = datetime(value.year, value.month, value.day)
    else:
        raise ConfigError(
            f"{where}: start {value!r} must be an ISO 8601 date and time such as "
            "2026-12-05T02:00:00+02:00"
        )
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC if timezone == "UTC" else ZoneInfo(timezone))
    return moment.timestamp()


def _window(index: int, raw: object, source: str) -> WindowSpec:
    where = f"{source}: maintenance[{index}]"
    if not isinstance(raw, dict):
        raise ConfigError(f"{where} must be a mapping with name, a target and times")
    name = raw.get("name")
    if not isinstance(name, str) or not _NAME_RE.fullmatch(name):
        raise ConfigError(
            f"{where}: name {name!r} must be 1-128 characters from a-z, 0-9, '.', '_' and "
            "'-', starting with a letter or digit"
        )
    where = f"{where} ({name})"
    unknown = set(raw) - set(WINDOW_FIELDS)
    if unknown:
        raise ConfigError(f"{where}: {unknown_fields(unknown, WINDOW_FIELDS)}")
    if raw.get("jobs") is None and raw.get("match") is None:
        raise ConfigError(f"{where}: no target; give jobs: [names] and/or match: {{label: value}}")
    jobs = parse_target_jobs(raw["jobs"], where=where) if raw.get("jobs") is not None else ()
    match = parse_match(raw["match"], where=where) if raw.get("match") is not None else ()
    try:
        timezone = check_timezone(raw.get("timezone", "UTC"))
    except InvalidTimezone as exc:
        raise ConfigError(f"{where}: {exc}") from exc
    if "duration" not in raw:
        raise ConfigError(f"{where}: no duration; give e.g. duration: 2h")
    duration = parse_window_duration(raw["duration"], where=where)
    has_start, has_schedule = raw.get("start") is not None, raw.get("schedule") is not None
    if has_start == has_schedule:
        raise ConfigError(
            f"{where}: give either start: (a one-off window, ISO 8601) or schedule: (a "
            "recurring one, cron), not both or neither"
        )
    if has_start:
        start = _start(raw["start"], timezone, where=where)
        return WindowSpec(name, jobs, match, start=start, duration=duration, timezone=timezone)
    try:
        schedule = check_cron(raw["schedule"])
    except InvalidSchedule as exc:
        raise ConfigError(f"{where}: {exc}") from exc
    return WindowSpec(name, jobs, match, schedule=schedule, duration=duration, timezone=timezone)


def parse_windows(raw: object, *, source: str = "<config>") -> tuple[WindowSpec, ...]:
    """The ``maintenance:`` list; names are unique."""
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise ConfigError(f"{source}: maintenance must be a list of window mappings")
    windows: list[WindowSpec] = []
    seen: set[str] = set()
    for index, item in enumerate(raw):
        window = _window(index, item, source)
        if window.name in seen:
            raise ConfigError(
                f"{source}: maintenance[{index}]: window {window.name!r} is defined twice"
            )
        seen.add(window.name)
        windows.append(window)
    return tuple(windows)
