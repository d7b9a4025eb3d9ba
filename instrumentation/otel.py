"""``configure()``: OpenTelemetry for applications that have none set up yet.

jobpulse itself only uses the OpenTelemetry API. An application that already configures the
SDK needs nothing from here. One that does not can call :func:`configure` once at start-up to
export jobpulse's spans and metrics (and its own) over OTLP/HTTP. The SDK and the exporter are
imported here, lazily: they come with the ``otlp`` extra (``pip install 'jobpulse[otlp]'``).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from opentelemetry import metrics, trace

from .errors import ConfigError

__all__ = ["configure"]

log = logging.getLogger("jobpulse.instrumentation")


def configure(
    service_name: str,
    endpoint: str | None = None,
    *,
    headers: Mapping[str, str] | None = None,
    export_interval: float = 60.0,
) -> tuple[trace.TracerProvider, metrics.MeterProvider]:
    """Install SDK tracer and meter providers exporting over OTLP/HTTP; return them.

    ``endpoint`` is the collector's base URL (``http://collector:4318``); without it the
    exporters follow ``OTEL_EXPORTER_OTLP_*`` variables and their default, localhost:4318.
    Global providers the application already installed are kept and returned unchanged.
    """
    try:
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError as exc:
        raise ConfigError(
            f"configure() needs the OpenTelemetry SDK and OTLP exporter ({exc.name} is not "
            "installed): pip install 'jobpulse[otlp]'"
        ) from exc
    if not service_name:
        raise ConfigError("configure(): service_name must be a non-empty string")

    resource = Resource.create({"service.name": service_name})
    base = endpoint.rstrip("/") if endpoint else None
    extra = dict(headers) if headers else None

    tracer_provider = trace.get_tracer_provider()
    if isinstance(tracer_provider, trace.ProxyTracerProvider):
        sdk_tracer = TracerProvider(resource=resource)
        span_exporter = OTLPSpanExporter(
            endpoint=f"{base}/v1/traces" if base else None, headers=extra
        )
        sdk_tracer.add_span_processor(BatchSpanProcessor(span_exporter))
        trace.set_tracer_provider(sdk_tracer)
        tracer_provider = sdk_tracer
    else:
        log.info("jobpulse: a tracer provider is already configured; configure() keeps it")

    meter_provider = metrics.get_meter_provider()
    if type(meter_provider).__name__ == "_ProxyMeterProvider":
        metric_exporter = OTLPMetricExporter(
            endpoint=f"{base}/v1/metrics" if base else None, headers=extra
        )
        reader = PeriodicExportingMetricReader(
            metric_exporter, export_interval_millis=export_interval * 1000
        )
        sdk_meter = MeterProvider(resource=resource, metric_readers=[reader])
        metrics.set_meter_provider(sdk_meter)
        meter_provider = sdk_meter
    else:
        log.info("jobpulse: a meter provider is already configured; configure() keeps it")
    return tracer_provider, meter_provider
