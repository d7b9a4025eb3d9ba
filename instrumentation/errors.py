"""The jobpulse exception tree.

Every error jobpulse raises on purpose derives from :class:`JobpulseError`; each leaf also
derives from the built-in exception a caller would naturally catch::

    JobpulseError
     ├── InvalidName          (ValueError)   a job name outside [a-z0-9][a-z0-9._-]{0,127}
     ├── InvalidSchedule      (ValueError)   a cron expression cronsim refuses, a bad `every`
     ├── InvalidTimezone      (ValueError)   not an IANA zone name
     ├── InvalidDuration      (ValueError)   not seconds or `1h30m`-style text
     ├── InvalidJobConfig     (ValueError)   a job field with a bad value (names job and field)
     ├── InvalidEvent         (ValueError)   a heartbeat event field with a bad value
     ├── ConfigError          (ValueError)   the sidecar's configuration file or settings
     ├── UnsupportedSchedule  (ValueError)   a scheduler's trigger no jobpulse schedule expresses
     └── AlreadyInstrumented  (RuntimeError) an integration's instrument() called twice

Messages name the offending value and say what would be accepted.
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = [
    "AlreadyInstrumented",
    "ConfigError",
    "InvalidDuration",
    "InvalidEvent",
    "InvalidJobConfig",
    "InvalidName",
    "InvalidSchedule",
    "InvalidTimezone",
    "JobpulseError",
    "UnsupportedSchedule",
    "unknown_fields",
]


class JobpulseError(Exception):
    """Root of every error jobpulse raises on purpose."""


class InvalidName(JobpulseError, ValueError):
    """A job name that does not match ``[a-z0-9][a-z0-9._-]{0,127}``."""


class InvalidSchedule(JobpulseError, ValueError):
    """A cron expression or interval that cannot be evaluated."""


class InvalidTimezone(JobpulseError, ValueError):
    """A timezone that is not an IANA zone name."""


class InvalidDuration(JobpulseError, ValueError):
    """A duration that is neither a number of seconds nor text like ``1h30m``."""


class InvalidJobConfig(JobpulseError, ValueError):
    """A job field with a bad value; ``job`` and ``field`` say where."""

    def __init__(self, message: str, *, job: str | None = None, field: str | None = None) -> None:
        super().__init__(message)
        self.job = job
        self.field = field


class InvalidEvent(JobpulseError, ValueError):
    """A heartbeat event that cannot be accepted; ``field`` names the culprit."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


class ConfigError(JobpulseError, ValueError):
    """The sidecar's configuration (file, flags or JOBPULSE_* variables) is invalid."""


class UnsupportedSchedule(JobpulseError, ValueError):
    """A scheduler's trigger or schedule that no jobpulse schedule expresses; the job is
    registered unscheduled."""


class AlreadyInstrumented(JobpulseError, RuntimeError):
    """An integration's ``instrument()`` was called twice for the same scheduler or app."""


def unknown_fields(unknown: Iterable[object], accepted: Iterable[str]) -> str:
    """The one wording for a mapping given keys it does not take, wherever it comes from (the
    configuration file, a job's fields, the API): ``unknown field 'a'; accepted: x, y`` or
    ``unknown fields 'a', 'b'; accepted: x, y``."""
    names = sorted({str(key) for key in unknown})
    noun = "field" if len(names) == 1 else "fields"
    return f"unknown {noun} {', '.join(map(repr, names))}; accepted: {', '.join(accepted)}"
