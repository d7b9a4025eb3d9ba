"""OTLP/HTTP span ingest: ``POST /v1/traces``, protobuf or OTLP/JSON, spans of jobs become runs.

A span is a job's run when it carries ``jobpulse.job.name`` (what the jobpulse library and any
job instrumented by hand set), or, when the ``otlp_timer_spans`` setting allows, when it is a
``faas.trigger=timer`` span, named by its span name. Its start is the run's ``start`` event and
its end the finish, with the duration; status ERROR makes it a failure (``error.type``, or the
exception event's ``exception.type``; the status or exception message). ``jobpulse.run.outcome``
``retry`` / ``cancelled`` (set by the library) keeps those outcomes, ``jobpulse.run.id`` the run
id (else the span id), ``faas.time`` the slot and ``faas.cron`` the schedule of a new job. Other
spans are ignored. The answer is an ``ExportTraceServiceResponse`` in the request's encoding,
with ``partial_success`` counting the job spans that were rejected.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
from dataclasses import replace
from typing import Any, Final

from aiohttp import web
from google.protobuf import json_format  # type: ignore[import-untyped]
from google.protobuf.message import DecodeError  # type: ignore[import-untyped]
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status
from sqlalchemy import select

from jobpulse.instrumentation.errors import InvalidEvent, InvalidSchedule
from jobpulse.instrumentation.spec import check_cron
from jobpulse.instrumentation.wire import Event, Limits, format_ts, parse_event, parse_ts

from ..domain.tables import Job
from ..store.writer import StoreUnavailable
from .errors import json_error
from .keys import SIDECAR

__all__ = ["otlp_handler"]

PROTOBUF: Final = "application/x-protobuf"
JSON: Final = "application/json"
_ID_FIELDS: Final = ("traceId", "spanId", "parentSpanId", "trace_id", "span_id", "parent_span_id")


def _attributes(kvs: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for kv in kvs:
        assert isinstance(kv, KeyValue)
        kind = kv.value.WhichOneof("value")
        if kind in ("string_value", "int_value", "bool_value", "double_value"):
            out[kv.key] = getattr(kv.value, kind)
    return out


def _hex_ids_to_base64(node: Any) -> None:
    """OTLP/JSON writes ids in hex; protobuf's JSON mapping expects base64 for bytes."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key in _ID_FIELDS and isinstance(value, str):
                try:
                    node[key] = base64.b64encode(bytes.fromhex(value)).decode()
                except ValueError:
                    raise json_format.ParseError(f"{key} {value!r} is not hex") from None
            else:
                _hex_ids_to_base64(value)
    elif isinstance(node, list):
        for item in node:
            _hex_ids_to_base64(item)


def _decode(body: bytes, content_type: str) -> ExportTraceServiceRequest:
    request = ExportTraceServiceRequest()
    if content_type == PROTOBUF:
        request.ParseFromString(body)
    else:
        data = json.loads(body.decode("utf-8"))
        if not isinstance(data, dict):
            raise json_format.ParseError("the body must be a JSON object")
        _hex_ids_to_base64(data)
        json_format.ParseDict(data, request, ignore_unknown_fields=True)
    return request


def _job_name(span: Span, attrs: dict[str, Any], timer_spans: bool) -> str | None:
    name = attrs.get("jobpulse.job.name")
    if name is None and timer_spans and attrs.get("faas.trigger") == "timer":
        name = span.name
    return name if name is None else str(name)


def _error(span: Span, attrs: dict[str, Any]) -> tuple[str | None, str | None]:
    etype, message = attrs.get("error.type"), span.status.message or None
    for event in span.events:
        if event.name == "exception":
            found = _attributes(event.attributes)
            etype = etype or found.get("exception.type")
            message = message or found.get("exception.message")
    return (str(etype) if etype else None), (str(message) if message else None)


def _span_events(
    span: Span, attrs: dict[str, Any], job: str, resource: dict[str, Any]
) -> list[dict[str, Any]]:
    """The wire events (start and finish) of one job span."""
    if not span.start_time_unix_nano or span.end_time_unix_nano < span.start_time_unix_nano:
        raise InvalidEvent("span", "has no start time, or ends before it starts")
    start, end = span.start_time_unix_nano / 1e9, span.end_time_unix_nano / 1e9
    ids: dict[str, Any] = {}
    if len(span.trace_id) == 16 and len(span.span_id) == 8:
        ids = {"trace_id": span.trace_id.hex(), "span_id": span.span_id.hex()}
    run_id = attrs.get("jobpulse.run.id") or ids.get("span_id")
    if not run_id:
        raise InvalidEvent("span", "has neither jobpulse.run.id nor a span id")
    common: dict[str, Any] = {"job": job, "run_id": str(run_id), **ids}
    if isinstance(resource.get("host.name"), str):
        common["host"] = resource["host.name"][:255]
    if isinstance(resource.get("process.pid"), int):
        common["pid"] = resource["process.pid"]
    if isinstance(attrs.get("faas.time"), str):
        with contextlib.suppress(InvalidEvent):
            common["scheduled_for"] = format_ts(parse_ts(attrs["faas.time"]))
    outcome = attrs.get("jobpulse.run.outcome")
    duration = (span.end_time_unix_nano - span.start_time_unix_nano) / 1e9
    finish: dict[str, Any] = {"type": "success", "ts": format_ts(end), "duration": duration}
    if outcome == "cancelled":
        finish["type"] = "cancelled"
    elif span.status.code == Status.STATUS_CODE_ERROR or outcome in ("failure", "retry"):
        etype, message = _error(span, attrs)
        finish.update(type="failure", will_retry=outcome == "retry", error_type=etype)
        finish.update(error_type=etype[:128] if etype else None, error_message=message)
    return [{**common, "type": "start", "ts": format_ts(start)}, {**common, **finish}]


def _cron(attrs: dict[str, Any]) -> str | None:
    try:
        return check_cron(attrs["faas.cron"]) if "faas.cron" in attrs else None
    except InvalidSchedule:
        return None


async def otlp_handler(request: web.Request) -> web.Response:
    sidecar = request.app[SIDECAR]
    metrics = sidecar.metrics
    content_type = request.content_type
    if content_type not in (PROTOBUF, JSON):
        metrics.rejected.labels("malformed").inc()
        return json_error(
            415,
            "unsupported media type",
            f"Content-Type {content_type!r} is not accepted on /v1/traces; send OTLP as "
            f"{PROTOBUF} or {JSON}",
        )
    try:
        body = await request.read()
    except web.HTTPRequestEntityTooLarge:
        metrics.rejected.labels("too_large").inc()
        return json_error(413, "request too large", "the body is over the size limit")
    try:
        decoded = _decode(body, content_type)
    except (DecodeError, json_format.ParseError, ValueError, RecursionError) as exc:
        metrics.rejected.labels("malformed").inc()
        return json_error(400, "malformed body", f"the body is not an OTLP trace export: {exc}")
    settings = sidecar.settings
    timer_spans = bool(settings.otlp_timer_spans)
    limits = Limits(settings.error_message_bytes, settings.log_bytes, settings.metadata_bytes)
    now = sidecar.clock.now()
    rejected: dict[int, str] = {}
    crons: dict[str, str] = {}
    events: list[tuple[int, Event]] = []
    index = -1
    for resource_spans in decoded.resource_spans:
        resource = _attributes(resource_spans.resource.attributes)
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                attrs = _attributes(span.attributes)
                name = _job_name(span, attrs, timer_spans)
                if name is None:
                    continue
                index += 1
                try:
                    parsed = [
                        parse_event(e, limits=limits, now=now)[0]
                        for e in _span_events(span, attrs, name, resource)
                    ]
                except InvalidEvent as exc:
                    rejected[index] = f"span {span.span_id.hex()}: {exc.field} {exc.reason}"
                    metrics.rejected.labels("invalid").inc()
                    continue
                if not sidecar.limiter.take(parsed[0].job):
                    rejected[index] = f"job {parsed[0].job!r} is over its rate limit"
                    metrics.rejected.labels("rate_limit").inc()
                    continue
                cron = _cron(attrs)
                if cron is not None:
                    crons.setdefault(parsed[0].job, cron)
                events.extend((index, e) for e in parsed)
    if crons:
        new = await asyncio.to_thread(_new_jobs, sidecar, set(crons))
        events = [
            (i, _declared(e, crons[e.job]) if e.type == "start" and e.job in new else e)
            for i, e in events
        ]
    if events:
        try:
            result = await sidecar.ingest([e for _, e in events])
        except StoreUnavailable as exc:
            return json_error(503, "store unavailable", f"{exc}; nothing was accepted, retry")
        for rej in result.rejected:
            span_index = events[rej["index"]][0]
            rejected.setdefault(span_index, f"{rej['field']}: {rej['reason']}")
            metrics.rejected.labels(rej["code"]).inc()
        for etype, n in result.by_type.items():
            metrics.received.labels(etype).inc(n)
    return _answer(content_type, rejected)


def _new_jobs(sidecar: Any, names: set[str]) -> set[str]:
    with sidecar.store.session() as session:
        known = set(session.scalars(select(Job.name).where(Job.name.in_(names))))
    return names - known


def _declared(event: Event, cron: str) -> Event:
    return replace(event, job_config={"schedule": cron})


def _answer(content_type: str, rejected: dict[int, str]) -> web.Response:
    response = ExportTraceServiceResponse()
    if rejected:
        response.partial_success.rejected_spans = len(rejected)
        reasons = list(rejected.values())
        more = f" (and {len(reasons) - 3} more)" if len(reasons) > 3 else ""
        response.partial_success.error_message = "; ".join(reasons[:3]) + more
    if content_type == PROTOBUF:
        return web.Response(body=response.SerializeToString(), content_type=PROTOBUF)
    return web.Response(text=json_format.MessageToJson(response), content_type=JSON)
