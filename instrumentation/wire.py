"""The heartbeat wire format (schema version 1): the one definition both halves use.

An event is a JSON object; a batch is a JSON array or NDJSON. :func:`parse_event` validates one
decoded object and returns an :class:`Event` plus warnings (unknown fields, truncations), or
raises :class:`~jobpulse.instrumentation.errors.InvalidEvent` naming the field. The library
builds events with :func:`event_to_wire`, or with :func:`values_to_wire` from the plain tuples
(:data:`EventValues`) the decorator queues. Timestamps are float seconds since the epoch (UTC)
inside the process and RFC 3339 with an offset on the wire.

Bounds (so that whatever is accepted can be stored and rendered, and arithmetic on it stays
in range): integers fit a signed 64-bit column (at most
:data:`~jobpulse.instrumentation.spec.INT64_MAX`, within narrower ranges where a field has
one); ``duration`` is at most :data:`MAX_DURATION` (366 days); ``ts``, ``scheduled_for`` and
``sent_at`` lie in [:data:`TS_MIN`, :data:`TS_MAX`) (1970-01-01T00:00:00Z to
2999-12-31T23:59:59Z). Given the receiver's clock (``now=``), a ``ts`` or ``scheduled_for``
more than :data:`MAX_FUTURE` (1 day) ahead of the sender's clock (``sent_at``, else ``now``)
is rejected too.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

from .errors import InvalidEvent, InvalidJobConfig, InvalidName
from .spec import INT64_MAX, _shown, parse_job_fields, parse_job_name

__all__ = [
    "EVENT_FIELDS",
    "EVENT_TYPES",
    "FINISH_TYPES",
    "MAX_DURATION",
    "MAX_FUTURE",
    "TS_MAX",
    "TS_MIN",
    "Event",
    "EventValues",
    "Limits",
    "event_to_wire",
    "format_ts",
    "parse_event",
    "parse_ts",
    "values_to_wire",
]

SCHEMA_VERSION: Final = 1
EVENT_TYPES: Final = ("start", "success", "failure", "cancelled", "progress", "log", "missed")
FINISH_TYPES: Final = frozenset({"success", "failure", "cancelled"})
KNOWN_FIELDS: Final = frozenset(
    {
        "v",
        "type",
        "job",
        "run_id",
        "ts",
        "scheduled_for",
        "attempt",
        "will_retry",
        "duration",
        "exit_code",
        "error_type",
        "error_message",
        "count",
        "host",
        "pid",
        "trace_id",
        "span_id",
        "metadata",
        "sent_at",
        "reason",
        "job_config",
        "message",
    }
)
_HEX32: Final = re.compile(r"[0-9a-f]{32}")
_HEX16: Final = re.compile(r"[0-9a-f]{16}")
TRUNCATION_MARKER: Final = "…[truncated]"

MAX_DURATION: Final = 366 * 86400.0
"""The longest ``duration`` accepted, in seconds (366 days): longer is a broken clock or a
hostile sender, and a run's start (``ts - duration``) must stay a renderable time."""
TS_MIN: Final = 0.0
"""The earliest ``ts``, ``scheduled_for`` or ``sent_at`` accepted: 1970-01-01T00:00:00Z."""
TS_MAX: Final = 32503680000.0
"""Timestamps must be before this: 3000-01-01T00:00:00Z. With :data:`TS_MIN` it keeps every
time the sidecar derives (a start from a duration, a clock-skew correction, a deadline) well
inside the years 1-9999 that can be stored and rendered."""
MAX_FUTURE: Final = 86400.0
"""How far (seconds, 1 day) a ``ts`` or ``scheduled_for`` may lie ahead of the sender's clock
when :func:`parse_event` is given ``now``: a last success in year 9999 would otherwise silence
staleness for ever."""
_TS_RANGE: Final = "1970-01-01T00:00:00Z to 2999-12-31T23:59:59Z"


@dataclass(frozen=True, slots=True)
class Limits:
    """Size limits applied while parsing (the sidecar's settings set them)."""

    error_message_bytes: int = 4096
    message_bytes: int = 10240
    metadata_bytes: int = 8192


DEFAULT_LIMITS: Final = Limits()


@dataclass(slots=True)
class Event:
    """One validated heartbeat event. Treat it as a value: nothing changes an event after it
    is built (use :func:`dataclasses.replace`). It is not a frozen dataclass because frozen
    construction sets every field through ``object.__setattr__``, which doubled the cost of an
    event on the decorator's path (see docs/benchmarks.md)."""

    type: str
    job: str
    run_id: str
    ts: float
    scheduled_for: float | None = None
    attempt: int | None = None
    will_retry: bool = False
    duration: float | None = None
    exit_code: int | None = None
    error_type: str | None = None
    error_message: str | None = None
    count: int | None = None
    host: str | None = None
    pid: int | None = None
    trace_id: str | None = None
    span_id: str | None = None
    metadata: dict[str, Any] | None = None
    sent_at: float | None = None
    reason: str | None = None
    job_config: dict[str, Any] | None = None
    message: str | None = None
    truncated: bool = field(default=False, compare=False)


def parse_ts(value: object, *, what: str = "ts") -> float:
    """Epoch seconds from RFC 3339 text that carries an offset (``Z`` or ``+02:00``)."""
    if not isinstance(value, str):
        raise InvalidEvent(what, f"must be an RFC 3339 timestamp string, got {value!r}")
    try:
        dt = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidEvent(
            what, f"{value!r} is not an RFC 3339 timestamp (like 2026-11-23T10:00:03.25Z)"
        ) from None
    if dt.tzinfo is None or "T" not in value.upper():
        raise InvalidEvent(what, f"{value!r} needs a date, a time and an offset (Z or +hh:mm)")
    try:
        dt.astimezone(UTC)  # representable in UTC, so it can be formatted back
        return dt.timestamp()
    except (ValueError, OverflowError):
        raise InvalidEvent(what, f"{value!r} is outside the years 1-9999 in UTC") from None


def _format_ts_slow(ts: float) -> str:
    dt = datetime.fromtimestamp(ts, UTC)
    text = dt.isoformat(timespec="microseconds" if dt.microsecond else "seconds")
    return text.replace("+00:00", "Z")


# The last whole second formatted (``YYYY-MM-DDTHH:MM:SS``): a client's events come in bursts
# within one second, and formatting the date and time is most of what formatting a ts costs.
_last_second: tuple[int, str] = (0, "1970-01-01T00:00:00")
_FAST_TS_LIMIT: Final = 253402300800  # 10000-01-01T00:00:00Z


def format_ts(ts: float) -> str:
    """RFC 3339 in UTC with a ``Z`` and at most microsecond precision.

    The text is the one ``datetime.fromtimestamp(ts, UTC).isoformat()`` gives (microseconds
    rounded half to even, left out when zero); floats from 1970 on take a faster path that
    reuses the formatted second of the previous call.
    """
    global _last_second
    if type(ts) is not float or not 0.0 <= ts < _FAST_TS_LIMIT:
        return _format_ts_slow(ts)
    whole = int(ts)
    micro = round((ts - whole) * 1e6)  # as datetime rounds: half to even
    if micro >= 1_000_000:
        whole += 1
        micro -= 1_000_000
    cached = _last_second
    if cached[0] != whole:
        cached = _last_second = (whole, datetime.fromtimestamp(whole, UTC).isoformat()[:19])
    return f"{cached[1]}.{micro:06d}Z" if micro else f"{cached[1]}Z"


def _text(name: str, value: str) -> str:
    """``value`` if it can be stored as UTF-8 (no lone surrogates from ``\\udxxx`` escapes)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidEvent(name, "must be valid Unicode text (it holds a lone surrogate)") from None
    return value


def _truncate(text: str, limit: int) -> tuple[str, bool]:
    raw = text.encode("utf-8")
    if len(raw) <= limit:
        return text, False
    cut = raw[: max(0, limit - len(TRUNCATION_MARKER.encode()))].decode("utf-8", "ignore")
    return cut + TRUNCATION_MARKER, True


def _int(data: dict[str, Any], name: str, lo: int, hi: int | None = None) -> int | None:
    """The integer field ``name`` in [lo, hi]; without ``hi``, up to :data:`INT64_MAX`, the
    largest value a store column holds."""
    value = data.get(name)
    if value is None:
        return None
    top = INT64_MAX if hi is None else hi
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= top:
        bounds = f"{lo}-{hi}" if hi is not None else f">= {lo} and <= {INT64_MAX} (64 bits)"
        raise InvalidEvent(name, f"must be an integer {bounds}, got {_shown(value)}")
    return value


def _event_ts(data: dict[str, Any], name: str) -> float:
    """The timestamp field ``name``, within [TS_MIN, TS_MAX)."""
    value = parse_ts(data[name], what=name)
    if not TS_MIN <= value < TS_MAX:
        raise InvalidEvent(name, f"{data[name]!r} is outside the accepted range {_TS_RANGE}")
    return value


def _not_ahead(name: str, value: float | None, reference: float, whose: str) -> None:
    if value is not None and value - reference > MAX_FUTURE:
        raise InvalidEvent(
            name,
            f"{format_ts(value)} is more than {MAX_FUTURE:.0f} s (1 day) ahead of {whose} "
            f"({format_ts(reference)}); times up to 1 day ahead are accepted",
        )


def _str(data: dict[str, Any], name: str, max_len: int) -> str | None:
    value = data.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > max_len:
        raise InvalidEvent(name, f"must be a string of at most {max_len} characters")
    return _text(name, value)


def parse_event(
    data: object,
    *,
    limits: Limits = DEFAULT_LIMITS,
    default_sent_at: float | None = None,
    now: float | None = None,
) -> tuple[Event, list[str]]:
    """Validate one decoded event. Returns the event and its warnings.

    ``now`` is the receiver's clock (epoch seconds). When it is given, a ``ts`` or
    ``scheduled_for`` more than :data:`MAX_FUTURE` ahead of the sender's clock is rejected: of
    ``sent_at`` (or ``default_sent_at``) when the event has one, since the sidecar corrects a
    skewed client clock from it, and of ``now`` otherwise.
    """
    if not isinstance(data, dict):
        raise InvalidEvent("event", f"must be a JSON object, got {type(data).__name__}")
    warnings = [f"unknown field {k!r} ignored" for k in data if k not in KNOWN_FIELDS]
    v = data.get("v", SCHEMA_VERSION)
    if v != SCHEMA_VERSION or isinstance(v, bool):
        raise InvalidEvent("v", f"schema version {v!r} is not supported; this sidecar speaks 1")
    etype = data.get("type")
    if etype not in EVENT_TYPES:
        raise InvalidEvent("type", f"{etype!r} is not one of {', '.join(EVENT_TYPES)}")
    if "job" not in data:
        raise InvalidEvent("job", "is required")
    try:
        job = parse_job_name(data["job"])
    except InvalidName as exc:
        raise InvalidEvent("job", str(exc)) from None
    run_id = data.get("run_id")
    if not isinstance(run_id, str) or not 1 <= len(run_id) <= 64:
        raise InvalidEvent("run_id", f"must be a string of 1-64 characters, got {run_id!r}")
    _text("run_id", run_id)
    if "ts" not in data:
        raise InvalidEvent("ts", "is required")
    ts = _event_ts(data, "ts")
    scheduled_for = (
        _event_ts(data, "scheduled_for") if data.get("scheduled_for") is not None else None
    )
    sent_at = _event_ts(data, "sent_at") if data.get("sent_at") is not None else default_sent_at
    if now is not None:
        reference, whose = (sent_at, "its sent_at") if sent_at is not None else (now, "now")
        _not_ahead("ts", ts, reference, whose)
        _not_ahead("scheduled_for", scheduled_for, reference, whose)
    attempt = _int(data, "attempt", 1)
    will_retry = data.get("will_retry", False)
    if not isinstance(will_retry, bool):
        raise InvalidEvent("will_retry", f"must be true or false, got {will_retry!r}")
    if will_retry and etype != "failure":
        raise InvalidEvent("will_retry", "is only valid on failure events")
    duration = data.get("duration")
    if duration is not None:
        if (
            isinstance(duration, bool)
            or not isinstance(duration, int | float)
            or not 0 <= duration <= MAX_DURATION  # NaN and infinities fail it too
        ):
            raise InvalidEvent(
                "duration",
                f"must be a number of seconds >= 0 and <= {MAX_DURATION:.0f} (366 days), "
                f"got {_shown(duration)}",
            )
        duration = float(duration)
    exit_code = _int(data, "exit_code", 0, 255)
    error_type = _str(data, "error_type", 128)
    count = _int(data, "count", 0)
    host = _str(data, "host", 255)
    pid = _int(data, "pid", 0)
    reason = _str(data, "reason", 128)
    truncated = False
    error_message = data.get("error_message")
    if error_message is not None:
        if not isinstance(error_message, str):
            raise InvalidEvent("error_message", "must be a string")
        error_message, truncated = _truncate(
            _text("error_message", error_message), limits.error_message_bytes
        )
    message = data.get("message")
    if message is not None:
        if not isinstance(message, str):
            raise InvalidEvent("message", "must be a string")
        message, cut = _truncate(_text("message", message), limits.message_bytes)
        truncated = truncated or cut
    trace_id = data.get("trace_id")
    if trace_id is not None and (not isinstance(trace_id, str) or not _HEX32.fullmatch(trace_id)):
        raise InvalidEvent("trace_id", "must be 32 lowercase hex digits")
    span_id = data.get("span_id")
    if span_id is not None and (not isinstance(span_id, str) or not _HEX16.fullmatch(span_id)):
        raise InvalidEvent("span_id", "must be 16 lowercase hex digits")
    metadata = data.get("metadata")
    if metadata is not None:
        if not isinstance(metadata, dict):
            raise InvalidEvent("metadata", "must be a JSON object")
        try:
            size = len(json.dumps(metadata, separators=(",", ":"), allow_nan=False).encode())
        except (ValueError, RecursionError):
            raise InvalidEvent("metadata", "must hold only finite numbers") from None
        if size > limits.metadata_bytes:
            raise InvalidEvent(
                "metadata", f"is {size} bytes; the limit is {limits.metadata_bytes} bytes"
            )
    job_config = data.get("job_config")
    if job_config is not None:
        if not isinstance(job_config, dict):
            raise InvalidEvent("job_config", "must be a JSON object of job fields")
        try:
            job_config = parse_job_fields(job, job_config)
        except InvalidJobConfig as exc:
            raise InvalidEvent(
                f"job_config.{exc.field}" if exc.field else "job_config", str(exc)
            ) from None
        if "after" in job_config:
            # A dependency cycle is refused where a configuration is written; an event is
            # accepted before the sidecar reads any other job, so it cannot be checked here.
            raise InvalidEvent(
                "job_config.after",
                "a client cannot declare dependencies: set after in jobpulse.yaml or with "
                "PUT /api/v1/jobs/{job}",
            )
    if etype == "missed" and scheduled_for is None:
        raise InvalidEvent("scheduled_for", "is required on missed events")
    if truncated:
        warnings.append("text truncated to the size limit")
    return (
        Event(
            type=etype,
            job=job,
            run_id=run_id,
            ts=ts,
            scheduled_for=scheduled_for,
            attempt=attempt,
            will_retry=will_retry,
            duration=duration,
            exit_code=exit_code,
            error_type=error_type,
            error_message=error_message,
            count=count,
            host=host,
            pid=pid,
            trace_id=trace_id,
            span_id=span_id,
            metadata=metadata,
            sent_at=sent_at,
            reason=reason,
            job_config=job_config,
            message=message,
            truncated=truncated,
        ),
        warnings,
    )


EVENT_FIELDS: Final = (
    "type", "job", "run_id", "ts", "scheduled_for", "attempt", "will_retry", "duration",
    "exit_code", "error_type", "error_message", "count", "host", "pid", "trace_id", "span_id",
    "metadata", "sent_at", "reason", "job_config", "message",
)  # fmt: skip
"""The wire fields of :class:`Event`, in its field order (every field but ``truncated``)."""

EventValues = tuple[
    str,  # type
    str,  # job
    str,  # run_id
    float,  # ts
    float | None,  # scheduled_for
    int | None,  # attempt
    bool,  # will_retry
    float | None,  # duration
    int | None,  # exit_code
    str | None,  # error_type
    str | None,  # error_message
    int | None,  # count
    str | None,  # host
    int | None,  # pid
    str | None,  # trace_id
    str | None,  # span_id
    dict[str, Any] | None,  # metadata
    float | None,  # sent_at
    str | None,  # reason
    dict[str, Any] | None,  # job_config
    str | None,  # message
]
"""An event as a plain tuple, in :data:`EVENT_FIELDS` order; ``Event(*values)`` is the event.

The decorator queues these to the heartbeat client: a tuple costs the job's thread a fraction
of an :class:`Event`, and the sender thread turns it into JSON with :func:`values_to_wire`."""


def event_to_wire(event: Event) -> dict[str, Any]:
    """The JSON object for ``event`` with unset fields left out."""
    return values_to_wire(tuple(getattr(event, name) for name in EVENT_FIELDS))


def values_to_wire(values: EventValues) -> dict[str, Any]:
    """The JSON object for the event ``values`` (``Event(*values)``) with unset fields left out.

    The one encoder of the wire format (:func:`event_to_wire` goes through it). Spelled out
    field by field: the heartbeat client's sender thread runs it for every event, and a loop
    over the field names cost it twice as much.
    """
    (
        type_, job, run_id, ts, scheduled_for, attempt, will_retry, duration, exit_code,
        error_type, error_message, count, host, pid, trace_id, span_id, metadata, sent_at,
        reason, job_config, message,
    ) = values  # fmt: skip
    out: dict[str, Any] = {
        "v": SCHEMA_VERSION,
        "type": type_,
        "job": job,
        "run_id": run_id,
        "ts": format_ts(ts),
    }
    if scheduled_for is not None:
        out["scheduled_for"] = format_ts(scheduled_for)
    if attempt is not None:
        out["attempt"] = attempt
    if will_retry:
        out["will_retry"] = will_retry
    if duration is not None:
        out["duration"] = duration
    if exit_code is not None:
        out["exit_code"] = exit_code
    if error_type is not None:
        out["error_type"] = error_type
    if error_message is not None:
        out["error_message"] = error_message
    if count is not None:
        out["count"] = count
    if host is not None:
        out["host"] = host
    if pid is not None:
        out["pid"] = pid
    if trace_id is not None:
        out["trace_id"] = trace_id
    if span_id is not None:
        out["span_id"] = span_id
    if metadata is not None:
        out["metadata"] = metadata
    if sent_at is not None:
        out["sent_at"] = format_ts(sent_at)
    if reason is not None:
        out["reason"] = reason
    if job_config is not None:
        out["job_config"] = job_config
    if message is not None:
        out["message"] = message
    return out
