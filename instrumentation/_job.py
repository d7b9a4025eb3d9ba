"""What every run of one monitored job shares: its validated declaration, telemetry, sink.

Built once, when the decorator is applied, so that a bad name, cron expression, timezone or
duration raises right there. Holds no per-run state; the only mutable parts are the error
counter (instrumentation trouble, logged once per kind) and the flag saying whether the job's
declaration (``job_config``) was already sent by this process.
"""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Callable, Mapping
from typing import Any

from opentelemetry import metrics, trace

from ._sink import EventSink
from ._telemetry import Telemetry
from .client import HeartbeatClient, get_client
from .spec import parse_job_fields, parse_job_name
from .wire import Event, EventValues

__all__ = ["JobContext"]

log = logging.getLogger("jobpulse.instrumentation")


class JobContext:
    """A job as the monitor knows it."""

    def __init__(
        self,
        name: str,
        fields: Mapping[str, Any],
        *,
        client: EventSink | None,
        tracer_provider: trace.TracerProvider | None,
        meter_provider: metrics.MeterProvider | None,
        clock: Callable[[], float],
        monotonic: Callable[[], float],
    ) -> None:
        self.name = parse_job_name(name)
        declared = {k: v for k, v in fields.items() if v is not None}
        self.config: dict[str, Any] = parse_job_fields(self.name, declared)
        self.telemetry = Telemetry(
            self.name,
            schedule=self.config.get("schedule"),
            tracer_provider=tracer_provider,
            meter_provider=meter_provider,
        )
        self.clock = clock
        self.monotonic = monotonic
        self.host = socket.gethostname()[:255]
        self._client = client
        self._config_sent = False
        self._errors = 0
        self._logged: set[str] = set()
        self._lock = threading.Lock()

    @property
    def errors(self) -> int:
        """Instrumentation errors so far (each kind is logged once)."""
        return self._errors

    def emit(self, values: EventValues) -> None:
        """Send the event ``Event(*values)`` to the injected client, else to the process
        default (created from the environment on first use).

        A :class:`HeartbeatClient` takes the values as they are and encodes them in its sender
        thread, which spares the job's thread building an :class:`Event`; any other sink (a
        subclass too, which may override ``emit``) gets the :class:`Event`.
        """
        sink = self._client if self._client is not None else get_client()
        if type(sink) is HeartbeatClient:
            sink.emit_values(values)
        else:
            sink.emit(Event(*values))

    def take_config(self) -> dict[str, Any] | None:
        """The declaration, the first time it is asked for; None afterwards or when empty."""
        if self._config_sent or not self.config:
            return None
        self._config_sent = True
        return dict(self.config)

    def report(self, where: str, exc: BaseException) -> None:
        """Count an instrumentation failure; log the first of each kind with its traceback."""
        key = f"{where}:{type(exc).__name__}"
        with self._lock:
            self._errors += 1
            first = key not in self._logged
            self._logged.add(key)
        if first:
            log.error(
                "jobpulse: instrumentation of job %r failed while %s (the job is unaffected; "
                "further errors of this kind are counted, not logged)",
                self.name,
                where,
                exc_info=exc,
            )
