"""OTLP/HTTP span ingest: the OpenTelemetry SDK's exporter, OTLP/JSON, and bad requests."""

from __future__ import annotations

import json
import time
from pathlib import Path

from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import Status, StatusCode

from jobpulse.instrumentation import InMemoryClient, monitor

from .live import LiveSidecar

T0 = 1_795_000_000  # seconds; a recent instant, whole


def _provider(live: LiveSidecar) -> TracerProvider:
    provider = TracerProvider(resource=Resource.create({"host.name": "batch-7"}))
    provider.add_span_processor(
        SimpleSpanProcessor(OTLPSpanExporter(endpoint=f"{live.url}/v1/traces", timeout=10))
    )
    return provider


def test_sdk_exported_spans_become_runs(live: LiveSidecar) -> None:
    provider = _provider(live)
    tracer = provider.get_tracer("reports")
    ok = tracer.start_span(
        "build report",
        attributes={
            "jobpulse.job.name": "Nightly-Report",
            "jobpulse.run.id": "run-ok-1",
            "faas.cron": "30 3 * * *",
        },
        start_time=T0 * 10**9,
    )
    ok.end(end_time=T0 * 10**9 + 2_500_000_000)
    bad = tracer.start_span(
        "build report", attributes={"jobpulse.job.name": "nightly-report"}, start_time=T0 * 10**9
    )
    bad.record_exception(ValueError("column 'total' is null"))
    bad.set_status(Status(StatusCode.ERROR))
    bad.end(end_time=T0 * 10**9 + 750_000_000)
    tracer.start_span("GET /health").end()  # not a job: ignored
    provider.shutdown()

    job = live.job("nightly-report")
    assert job["schedule"] == "30 3 * * *"
    runs = {r["run_id"]: r for r in live.runs("nightly-report")}
    assert runs["run-ok-1"]["outcome"] == "success"
    assert runs["run-ok-1"]["duration"] == 2.5
    assert runs["run-ok-1"]["host"] == "batch-7"
    bad_id = format(bad.get_span_context().span_id, "016x")
    failed = runs[bad_id]  # no jobpulse.run.id: the span id is the run id
    assert (failed["outcome"], failed["duration"]) == ("failure", 0.75)
    assert (failed["error_type"], failed["error_message"]) == (
        "ValueError",
        "column 'total' is null",
    )
    assert failed["trace_id"] == format(bad.get_span_context().trace_id, "032x")
    assert live.get("/api/v1/jobs")["jobs"] == [live.job("nightly-report")]


def test_monitor_spans_exported_over_otlp_are_runs(live: LiveSidecar) -> None:
    provider = _provider(live)
    heartbeats = InMemoryClient()  # the heartbeats go elsewhere: the spans alone make the runs

    @monitor("invoice-sync", schedule="*/5 * * * *", client=heartbeats, tracer_provider=provider)
    def sync(fail: bool) -> None:
        time.sleep(0.02)
        if fail:
            raise ConnectionError("ledger unavailable")

    sync(False)
    try:
        sync(True)
    except ConnectionError:
        pass
    provider.shutdown()
    runs = sorted(live.runs("invoice-sync"), key=lambda r: r["started_at"])
    assert [r["outcome"] for r in runs] == ["success", "failure"]
    assert runs[1]["error_type"] == "ConnectionError"
    assert all(r["duration"] >= 0.02 for r in runs)
    sent = {e.run_id for e in heartbeats.finished("invoice-sync")}
    assert {r["run_id"] for r in runs} == sent  # the same run ids as the heartbeats carry
    assert live.job("invoice-sync")["schedule"] == "*/5 * * * *"


def _json_body(spans: list[dict[str, object]]) -> bytes:
    return json.dumps(
        {
            "resourceSpans": [
                {
                    "resource": {
                        "attributes": [{"key": "process.pid", "value": {"intValue": "4242"}}]
                    },
                    "scopeSpans": [{"scope": {"name": "hand-made"}, "spans": spans}],
                }
            ]
        }
    ).encode()


def test_otlp_json_with_partial_success(live: LiveSidecar) -> None:
    good = {
        "traceId": "5b8efff798038103d269b633813fc60c",
        "spanId": "eee19b7ec3c1b174",
        "name": "export",
        "kind": 1,
        "startTimeUnixNano": str(T0 * 10**9),
        "endTimeUnixNano": str(T0 * 10**9 + 1_000_000_000),
        "attributes": [
            {"key": "jobpulse.job.name", "value": {"stringValue": "json-export"}},
            {"key": "error.type", "value": {"stringValue": "DiskFull"}},
        ],
        "status": {"code": 2, "message": "no space left on device"},
    }
    bad_name = {**good, "spanId": "eee19b7ec3c1b175", "attributes": [
        {"key": "jobpulse.job.name", "value": {"stringValue": "Not a name!"}}
    ]}  # fmt: skip
    status, headers, body = live.request(
        "/v1/traces", _json_body([good, bad_name]), "application/json"
    )
    assert status == 200 and headers["Content-Type"].startswith("application/json")
    answer = json.loads(body)["partialSuccess"]
    assert answer["rejectedSpans"] == "1" and "eee19b7ec3c1b175" in answer["errorMessage"]
    [run] = live.runs("json-export")
    assert (run["outcome"], run["error_type"], run["error_message"]) == (
        "failure",
        "DiskFull",
        "no space left on device",
    )
    assert (run["trace_id"], run["span_id"], run["pid"]) == (good["traceId"], good["spanId"], 4242)
    assert run["duration"] == 1.0


def test_undecodable_and_unsupported_bodies(live: LiveSidecar) -> None:
    assert live.request("/v1/traces", b"\xff\xfe garbage", "application/x-protobuf")[0] == 400
    assert live.request("/v1/traces", b"{not json", "application/json")[0] == 400
    bad_id = _json_body([{"traceId": "zz", "spanId": "00", "name": "x"}])
    assert live.request("/v1/traces", bad_id, "application/json")[0] == 400
    assert live.request("/v1/traces", b"hello", "text/plain")[0] == 415
    status, _, body = live.request("/v1/traces", b"", "application/x-protobuf")
    assert status == 200  # an empty export is valid
    assert not ExportTraceServiceResponse.FromString(body).HasField("partial_success")


def _timer_span(live: LiveSidecar, name: str) -> None:
    provider = _provider(live)
    span = provider.get_tracer("cron").start_span(
        name, attributes={"faas.trigger": "timer"}, start_time=T0 * 10**9
    )
    span.end(end_time=T0 * 10**9 + 1_000_000_000)
    provider.shutdown()


def test_timer_spans_without_a_job_name_only_when_the_setting_allows(tmp_path: Path) -> None:
    (tmp_path / "off").mkdir()
    off = LiveSidecar(tmp_path / "off").start()
    try:
        _timer_span(off, "purge-sessions")
        assert off.get("/api/v1/jobs")["jobs"] == []
    finally:
        off.stop()
    (tmp_path / "on").mkdir()
    on = LiveSidecar(tmp_path / "on", otlp_timer_spans=True).start()
    try:
        _timer_span(on, "purge-sessions")
        [run] = on.runs("purge-sessions")
        assert (run["outcome"], run["duration"]) == ("success", 1.0)
    finally:
        on.stop()
