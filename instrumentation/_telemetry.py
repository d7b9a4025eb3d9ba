"""OpenTelemetry for one monitored job, through the API only.

One tracer, one ``jobpulse.job.runs`` counter and one ``jobpulse.job.duration`` histogram per
monitor, created when the monitor is; with no providers injected they come from the global
ones, which are no-ops until the application configures OpenTelemetry (and the API's proxies
pick up a provider configured later).
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import Final

from opentelemetry import metrics, trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

from .wire import format_ts

__all__ = ["Telemetry"]

SCOPE: Final = "jobpulse.instrumentation"
# Job-sized buckets (seconds): sub-second tasks to day-long batch jobs.
DURATION_BUCKETS: Final = (
    0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0,
    7200.0, 14400.0, 43200.0, 86400.0,
)  # fmt: skip
OTHER_ERROR: Final = "_OTHER"  # semantic conventions' error.type when no class names it


def _version() -> str:
    try:
        return version("jobpulse")
    except PackageNotFoundError:  # pragma: no cover - a bare checkout
        return "0+unknown"


class Telemetry:
    """Span and metric instruments for the runs of one job."""

    def __init__(
        self,
        job: str,
        *,
        schedule: str | None,
        tracer_provider: trace.TracerProvider | None,
        meter_provider: metrics.MeterProvider | None,
    ) -> None:
        self.job = job
        self.schedule = schedule
        self.tracer = trace.get_tracer(SCOPE, _version(), tracer_provider=tracer_provider)
        meter = metrics.get_meter(SCOPE, _version(), meter_provider=meter_provider)
        self.runs = meter.create_counter(
            "jobpulse.job.runs", unit="{run}", description="Finished runs of a job, by outcome."
        )
        self.duration = meter.create_histogram(
            "jobpulse.job.duration",
            unit="s",
            description="Duration of a job's runs.",
            explicit_bucket_boundaries_advisory=DURATION_BUCKETS,
        )

    def start_span(
        self,
        *,
        run_id: str,
        start: float,
        scheduled_for: float | None,
        function: str | None,
    ) -> Span:
        span = self.tracer.start_span(
            self.job,
            kind=SpanKind.INTERNAL,
            start_time=int(start * 1e9),
            record_exception=False,
            set_status_on_exception=False,
        )
        if span.is_recording():  # with no SDK configured, attributes would be thrown away
            attributes: dict[str, str] = {
                "faas.trigger": "timer",
                "faas.time": format_ts(scheduled_for if scheduled_for is not None else start),
                "jobpulse.job.name": self.job,
                "jobpulse.run.id": run_id,
            }
            if self.schedule:
                attributes["faas.cron"] = self.schedule
            if function:
                attributes["code.function.name"] = function
            span.set_attributes(attributes)
        return span

    def finish(
        self,
        span: Span | None,
        *,
        outcome: str,
        error_type: str | None,
        exc: BaseException | None,
        duration: float,
        end: float,
    ) -> None:
        """End the span and record the run in the counter and histogram."""
        failed = outcome in ("failure", "retry")
        if span is not None:
            span.set_attribute("jobpulse.run.outcome", outcome)
            if exc is not None and outcome != "success":
                span.record_exception(exc, escaped=True)
            if failed:
                span.set_attribute("error.type", error_type or OTHER_ERROR)
                span.set_status(Status(StatusCode.ERROR, error_type or OTHER_ERROR))
            span.end(end_time=int(end * 1e9))
        attributes = {"jobpulse.job.name": self.job, "outcome": outcome}
        if failed:
            attributes["error.type"] = error_type or OTHER_ERROR
        self.runs.add(1, attributes)
        self.duration.record(duration, {"jobpulse.job.name": self.job, "outcome": outcome})
