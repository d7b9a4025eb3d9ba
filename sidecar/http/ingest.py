"""Ingest over HTTP: ``POST /api/v1/events`` (JSON array or NDJSON) and Healthchecks-style pings.

Handlers parse and validate on the event loop, hand the accepted events to the inbox's
appender, and answer once they are durable there (group commit); they are applied just behind
(``inbox.py``). ``?wait=applied`` answers after they are applied.
"""

from __future__ import annotations

import time
from typing import Any

from aiohttp import web

from jobpulse.instrumentation._ids import new_run_id
from jobpulse.instrumentation.errors import InvalidEvent, InvalidName
from jobpulse.instrumentation.spec import parse_job_name
from jobpulse.instrumentation.wire import Event, Limits, parse_event

from ..jsonio import loads
from ..store.writer import StoreUnavailable
from .errors import json_error
from .keys import AUTH, SIDECAR

__all__ = ["events_handler", "ping_handler"]

JSON_TYPES = ("application/json", "")
NDJSON_TYPES = ("application/x-ndjson", "application/ndjson", "application/jsonlines")


def _limits(request: web.Request) -> Limits:
    s = request.app[SIDECAR].settings
    return Limits(
        error_message_bytes=s.error_message_bytes,
        message_bytes=s.log_bytes,
        metadata_bytes=s.metadata_bytes,
    )


class _BadLine:
    """An NDJSON line that does not parse: rejected alone, the other lines still count."""

    __slots__ = ("error", "number")

    def __init__(self, number: int, error: str) -> None:
        self.number = number
        self.error = error


def _decode(body: bytes, content_type: str) -> list[Any]:
    text = body.decode("utf-8")
    if content_type in NDJSON_TYPES:
        items: list[Any] = []
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                items.append(loads(line))
            except (ValueError, RecursionError) as exc:
                items.append(_BadLine(number, str(exc)))
        if items and all(isinstance(item, _BadLine) for item in items):
            first = items[0]
            raise ValueError(f"line {first.number}: {first.error}")
        return items
    data = loads(text)
    return data if isinstance(data, list) else [data]


def _wait_applied(request: web.Request) -> bool | web.Response:
    wait = request.query.get("wait")
    if wait is None:
        return False
    if wait != "applied":
        return json_error(
            422, "invalid parameter", f"wait={wait!r} is not accepted; the only value is 'applied'"
        )
    return True


async def events_handler(request: web.Request) -> web.Response:
    sidecar = request.app[SIDECAR]
    metrics = sidecar.metrics
    started = time.perf_counter()
    content_type = request.content_type if request.headers.get("Content-Type") else ""
    if content_type not in JSON_TYPES + NDJSON_TYPES:
        metrics.rejected.labels("malformed").inc()
        return json_error(
            415,
            "unsupported media type",
            f"Content-Type {content_type!r} is not accepted; send application/json (an array "
            "of events) or application/x-ndjson (one event a line)",
        )
    wait = _wait_applied(request)
    if isinstance(wait, web.Response):
        return wait
    try:
        body = await request.read()
    except web.HTTPRequestEntityTooLarge:
        metrics.rejected.labels("too_large").inc()
        return json_error(
            413,
            "request too large",
            f"the body is over the limit of {sidecar.settings.max_body_bytes} bytes; "
            "send fewer events per request",
        )
    try:
        items = _decode(body, content_type)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        metrics.rejected.labels("malformed").inc()
        return json_error(400, "malformed body", f"the body is not valid JSON: {exc}")
    limit = sidecar.settings.max_batch_events
    if len(items) > limit:
        metrics.rejected.labels("batch_too_long").inc(len(items))
        return json_error(
            413, "batch too long", f"{len(items)} events in one request; the limit is {limit}"
        )
    events: list[Event] = []
    positions: list[int] = []
    rejected: list[dict[str, Any]] = []
    warnings: list[str] = []
    limits = _limits(request)
    sent_at_now = None
    now = sidecar.clock.now()  # a ts more than a day ahead of the sender's clock is refused
    limited: list[str] = []
    for index, item in enumerate(items):
        if isinstance(item, _BadLine):
            reason = f"line {item.number} is not valid JSON: {item.error}"
            rejected.append({"index": index, "field": "line", "reason": reason})
            metrics.rejected.labels("malformed").inc()
            continue
        try:
            event, warns = parse_event(item, limits=limits, default_sent_at=sent_at_now, now=now)
        except InvalidEvent as exc:
            rejected.append({"index": index, "field": exc.field, "reason": exc.reason})
            metrics.rejected.labels("invalid").inc()
            continue
        if not sidecar.limiter.take(event.job):
            rejected.append({"index": index, "field": "job", "reason": _over(event.job)})
            limited.append(event.job)
            continue
        events.append(event)
        positions.append(index)
        warnings.extend(f"event {index}: {w}" for w in warns)
    if limited:
        metrics.rejected.labels("rate_limit").inc(len(limited))
        if len(limited) == len(items):
            return _too_many(sidecar.limiter.retry_after(limited[0]), _over(limited[0]))
    accepted = duplicates = 0
    if events:
        try:
            result = await sidecar.ingest(events, wait_applied=wait)
        except StoreUnavailable as exc:
            return json_error(503, "store unavailable", f"{exc}; nothing was accepted, retry")
        accepted, duplicates = result.accepted, result.duplicates
        for rej in result.rejected:
            idx = positions[rej["index"]]
            rejected.append({"index": idx, "field": rej["field"], "reason": rej["reason"]})
            metrics.rejected.labels(rej["code"]).inc()
        for etype, n in result.by_type.items():
            metrics.received.labels(etype).inc(n)
        for warning in result.warnings:
            local, _, text = warning.partition(": ")
            warnings.append(f"event {positions[int(local.split()[1])]}: {text}")
    rejected.sort(key=lambda r: r["index"])
    metrics.ingest_latency.observe(time.perf_counter() - started)
    return web.json_response(
        {"accepted": accepted, "duplicates": duplicates, "rejected": rejected, "warnings": warnings}
    )


_ACTIONS = {"": "success", "start": "start", "fail": "failure", "log": "log"}


async def ping_handler(request: web.Request) -> web.StreamResponse:
    sidecar = request.app[SIDECAR]
    auth = request.app[AUTH]
    parts = [p for p in request.match_info["tail"].split("/") if p != ""]
    if auth.enabled:
        if not parts or not auth.check_ping_key(parts[0]):
            return _text(
                404 if not parts else 403, "ping key missing or wrong; use /ping/<ping_key>/<job>"
            )
        parts = parts[1:]
    if not 1 <= len(parts) <= 2:
        return _text(404, "not found: use /ping/<job>[/start|/fail|/log|/<exit status>]")
    try:
        job = parse_job_name(parts[0])
    except InvalidName as exc:
        return _text(400, str(exc))
    action = parts[1] if len(parts) == 2 else ""
    wait = _wait_applied(request)
    if isinstance(wait, web.Response):
        return wait
    exit_code: int | None = None
    if action in _ACTIONS:
        etype = _ACTIONS[action]
    elif action.isascii() and action.isdigit():
        exit_code = int(action)
        if exit_code > 255:
            return _text(400, f"exit status {action} is out of range; use 0-255")
        etype = "success" if exit_code == 0 else "failure"
    else:
        return _text(404, f"unknown ping action {action!r}; use start, fail, log or 0-255")
    rid = request.query.get("rid")
    if rid is not None and not 1 <= len(rid) <= 64:
        return _text(400, "rid must be 1-64 characters (a UUID is recommended)")
    if not sidecar.limiter.take(job):
        sidecar.metrics.rejected.labels("rate_limit").inc()
        return _too_many(sidecar.limiter.retry_after(job), _over(job))
    create = request.query.get("create") in ("1", "true", "yes")
    body = await request.read() if request.can_read_body else b""
    message = body[: sidecar.settings.log_bytes].decode("utf-8", "replace") if body else None
    now = sidecar.clock.now()
    event = Event(
        type=etype,
        job=job,
        run_id=rid or new_run_id(),  # no system call (and GIL release) per ping
        ts=now,
        exit_code=exit_code,
        message=message,
        error_message=(
            message[: sidecar.settings.error_message_bytes]
            if etype == "failure" and message
            else None
        ),
    )
    try:
        result = await sidecar.ingest(
            [event],
            create=create,
            pair_latest=rid is None and etype != "start",
            check_keys=rid is not None,  # a run id made here cannot be a duplicate
            wait_applied=wait,
        )
    except StoreUnavailable as exc:
        return _text(503, f"{exc}; retry")
    if result.rejected:
        code = result.rejected[0]["code"]
        sidecar.metrics.rejected.labels(code).inc()
        if code == "unknown_job":
            return _text(404, f"unknown job {job!r}; add ?create=1 to register it")
        if code == "job_cap":
            return _text(403, result.rejected[0]["reason"])
        return _text(400, result.rejected[0]["reason"])
    if result.accepted:
        sidecar.metrics.received_by_type[etype].inc()
    return _text(200, "OK")


def _text(status: int, text: str) -> web.Response:
    return web.Response(status=status, text=text)


def _over(job: str) -> str:
    return f"job {job!r} is over its rate limit; retry later"


def _too_many(retry_after: int, detail: str) -> web.Response:
    response = json_error(429, "rate limited", detail)
    response.headers["Retry-After"] = str(retry_after)
    return response
