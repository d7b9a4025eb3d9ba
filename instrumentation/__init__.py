"""jobpulse's job-side library: report background jobs as heartbeats, spans and metrics.

    from jobpulse.instrumentation import monitor

    @monitor("nightly-report", schedule="0 3 * * *", timezone="Europe/Riga")
    def nightly_report() -> None: ...

Importing this package pulls in no web framework, ORM or OpenTelemetry SDK.
"""

from __future__ import annotations

from ._run import Run
from ._sink import ClientStats, EventSink
from .client import HeartbeatClient, get_client, set_client
from .errors import (
    ConfigError,
    InvalidDuration,
    InvalidEvent,
    InvalidJobConfig,
    InvalidName,
    InvalidSchedule,
    InvalidTimezone,
    JobpulseError,
)
from .monitor import Monitor, monitor
from .otel import configure
from .testing import InMemoryClient
from .wire import Event

__all__ = [
    "ClientStats",
    "ConfigError",
    "Event",
    "EventSink",
    "HeartbeatClient",
    "InMemoryClient",
    "InvalidDuration",
    "InvalidEvent",
    "InvalidJobConfig",
    "InvalidName",
    "InvalidSchedule",
    "InvalidTimezone",
    "JobpulseError",
    "Monitor",
    "Run",
    "configure",
    "get_client",
    "monitor",
    "set_client",
]
