"""configure() installs the SDK with OTLP/HTTP exporters; run in a subprocess (it sets globals)."""

from __future__ import annotations

import subprocess
import sys

CODE = """
from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.trace import TracerProvider
from jobpulse.instrumentation import configure

tracer_provider, meter_provider = configure("billing-jobs", endpoint="http://127.0.0.1:1")
assert isinstance(tracer_provider, TracerProvider)
assert isinstance(meter_provider, MeterProvider)
assert trace.get_tracer_provider() is tracer_provider
assert metrics.get_meter_provider() is meter_provider
assert tracer_provider.resource.attributes["service.name"] == "billing-jobs"
exporter = tracer_provider._active_span_processor._span_processors[0].span_exporter
assert exporter._endpoint == "http://127.0.0.1:1/v1/traces", exporter._endpoint
again = configure("other")
assert again == (tracer_provider, meter_provider)
tracer_provider.shutdown = lambda: None  # nothing listens on port 1: skip the final export
meter_provider.shutdown = lambda *a, **k: None
"""


def test_configure_installs_otlp_exporters_once() -> None:
    result = subprocess.run(
        [sys.executable, "-c", CODE], capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 0, result.stderr
