"""Spans and metrics, checked with the real OpenTelemetry SDK (providers injected, never global)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from jobpulse.instrumentation import InMemoryClient, monitor

Spans = tuple[TracerProvider, InMemorySpanExporter]
Meters = tuple[MeterProvider, InMemoryMetricReader]


def points(reader: InMemoryMetricReader, name: str) -> list[Any]:
    data = reader.get_metrics_data()
    assert data is not None
    found = []
    for resource in data.resource_metrics:
        for scope in resource.scope_metrics:
            assert scope.scope.name == "jobpulse.instrumentation"
            for metric in scope.metrics:
                if metric.name == name:
                    found.append((metric, list(metric.data.data_points)))
    assert len(found) == 1, f"{name} exported {len(found)} times"
    return found[0]  # type: ignore[no-any-return]


def test_successful_run_has_a_span_with_faas_attributes(spans: Spans) -> None:
    provider, exporter = spans
    client = InMemoryClient()

    @monitor("nightly", schedule="0 3 * * *", client=client, tracer_provider=provider)
    def job() -> str:
        inner = trace.get_current_span().get_span_context()
        return format(inner.span_id, "016x")

    current_span_id = job()
    (span,) = exporter.get_finished_spans()
    attrs = dict(span.attributes or {})
    start, success = client.events
    assert span.name == "nightly"
    assert attrs["faas.trigger"] == "timer"
    assert attrs["faas.cron"] == "0 3 * * *"
    assert attrs["jobpulse.job.name"] == "nightly"
    assert attrs["jobpulse.run.id"] == start.run_id
    assert attrs["code.function.name"].endswith(
        "test_successful_run_has_a_span_with_faas_attributes.<locals>.job"
    )
    assert str(attrs["faas.time"]).endswith("Z")
    assert span.status.status_code is StatusCode.UNSET
    # The span is current inside the job, and the heartbeats link to it.
    assert current_span_id == start.span_id == success.span_id
    assert start.trace_id == format(span.context.trace_id, "032x")


def test_failed_run_sets_error_status_and_records_the_exception(spans: Spans) -> None:
    provider, exporter = spans

    @monitor("fails", client=InMemoryClient(), tracer_provider=provider)
    def job() -> None:
        raise LookupError("no such row")

    with pytest.raises(LookupError):
        job()
    (span,) = exporter.get_finished_spans()
    assert span.status.status_code is StatusCode.ERROR
    assert (span.attributes or {})["error.type"] == "LookupError"
    assert [e.name for e in span.events] == ["exception"]
    assert "faas.cron" not in (span.attributes or {})


def test_generator_span_is_current_only_while_the_generator_runs(spans: Spans) -> None:
    provider, exporter = spans
    seen: list[bool] = []

    @monitor("gen-span", client=InMemoryClient(), tracer_provider=provider)
    def job() -> Iterator[int]:
        for i in range(2):
            seen.append(trace.get_current_span().get_span_context().is_valid)
            yield i

    for _ in job():
        assert not trace.get_current_span().get_span_context().is_valid
    assert seen == [True, True]
    assert len(exporter.get_finished_spans()) == 1


def test_counter_and_histogram(meters: Meters) -> None:
    provider, reader = meters
    client = InMemoryClient()
    job = monitor("metered", client=client, meter_provider=provider)

    @job
    def work(fail: bool) -> None:
        if fail:
            raise TimeoutError("slow")

    work(False)
    work(False)
    with pytest.raises(TimeoutError):
        work(True)
    with job.run(attempt=1, will_retry=True) as run:
        run.fail("try again")

    metric, counts = points(reader, "jobpulse.job.runs")
    by_attrs = {tuple(sorted(p.attributes.items())): p.value for p in counts}
    assert by_attrs == {
        (("jobpulse.job.name", "metered"), ("outcome", "success")): 2,
        (
            ("error.type", "TimeoutError"),
            ("jobpulse.job.name", "metered"),
            ("outcome", "failure"),
        ): 1,
        (("error.type", "_OTHER"), ("jobpulse.job.name", "metered"), ("outcome", "retry")): 1,
    }
    metric, durations = points(reader, "jobpulse.job.duration")
    assert metric.unit == "s"
    assert sum(p.count for p in durations) == 4
    assert 86400.0 in durations[0].explicit_bounds


def test_instruments_are_created_once_per_monitor(meters: Meters) -> None:
    provider, reader = meters
    job = monitor("once", client=InMemoryClient(), meter_provider=provider)(lambda: None)
    for _ in range(5):
        job()
    _, counts = points(reader, "jobpulse.job.runs")
    assert [p.value for p in counts] == [5]


def test_without_providers_the_global_noop_is_used() -> None:
    client = InMemoryClient()
    job = monitor("no-otel", client=client)(lambda: 1)
    assert job() == 1
    start, _ = client.events
    assert start.trace_id is None
    assert start.span_id is None
