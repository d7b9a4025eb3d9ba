"""JSON Schemas (OpenAPI 3.1 components) of the sidecar's request and response bodies.

Shapes follow ``views.py``, ``rollup.py`` and the wire format (``jobpulse.instrumentation.wire``).
"""

from __future__ import annotations

from typing import Any

from jobpulse.instrumentation.spec import INT64_MAX
from jobpulse.instrumentation.wire import MAX_DURATION

__all__ = ["COMPONENTS", "JOB_PARAM", "err", "json_body", "ref", "text_body"]

STRING: dict[str, Any] = {"type": "string"}
INT: dict[str, Any] = {"type": "integer"}
NUMBER: dict[str, Any] = {"type": "number"}


def ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


def nullable(schema: dict[str, Any]) -> dict[str, Any]:
    return {"anyOf": [schema, {"type": "null"}]}


def json_body(description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def text_body(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"text/plain": {"schema": STRING}}}


def err(description: str) -> dict[str, Any]:
    return json_body(description, ref("Error"))


def obj(required: list[str], **props: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "required": required, "properties": props}


JOB_PARAM: dict[str, Any] = {
    "name": "job",
    "in": "path",
    "required": True,
    "description": "Job name ([a-z0-9][a-z0-9._-]{0,127}, case-folded).",
    "schema": {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"},
}
STAMP = {"type": "string", "format": "date-time"}
N_STAMP = nullable(STAMP)
N_NUMBER = nullable(NUMBER)
N_STRING = nullable(STRING)
N_INT = nullable(INT)
DURATION = {"anyOf": [{"type": "number", "exclusiveMinimum": 0}, STRING]}
COUNTS = obj(
    ["success", "failure", "timeout", "cancelled", "retry"],
    **dict.fromkeys(("success", "failure", "timeout", "cancelled", "retry"), INT),
)

_JOB_FIELDS = {
    "schedule": nullable(STRING),
    "every": nullable(DURATION),
    "after": {
        "description": "jobs this one runs after (not accepted in an event's job_config)",
        "anyOf": [STRING, {"type": "array", "items": STRING}, {"type": "null"}],
    },
    "timezone": STRING,
    "grace": nullable(DURATION),
    "early_tolerance": nullable(DURATION),
    "max_runtime": nullable(DURATION),
    "heartbeat_timeout": nullable(DURATION),
    "max_silence": nullable(DURATION),
    "failure_threshold": {"type": "integer", "minimum": 1},
    "recovery_threshold": {"type": "integer", "minimum": 1},
    "concurrency": {"enum": ["allow", "forbid"]},
    "labels": {"type": "object", "additionalProperties": STRING},
    "paused": {"type": "boolean"},
    "buckets": {"type": "array", "items": DURATION, "minItems": 1},
    "anomaly": {
        "anyOf": [
            {"type": "boolean"},
            {"enum": ["on", "off"]},
            {
                "type": "object",
                "properties": {
                    "factor": {"type": "number", "minimum": 1},
                    "window": DURATION,
                    "min_runs": {"type": "integer", "minimum": 1},
                },
                "additionalProperties": False,
            },
        ]
    },
}

_EVENT = obj(
    ["type", "job", "run_id", "ts"],
    v={"const": 1},
    type={"enum": ["start", "success", "failure", "cancelled", "progress", "log", "missed"]},
    job=STRING,
    run_id={"type": "string", "minLength": 1, "maxLength": 64},
    ts=STAMP,
    scheduled_for=STAMP,
    attempt={"type": "integer", "minimum": 1, "maximum": INT64_MAX},
    will_retry={"type": "boolean"},
    duration={"type": "number", "minimum": 0, "maximum": MAX_DURATION},
    exit_code={"type": "integer", "minimum": 0, "maximum": 255},
    error_type={"type": "string", "maxLength": 128},
    error_message=STRING,
    message=STRING,
    count={"type": "integer", "minimum": 0, "maximum": INT64_MAX},
    host={"type": "string", "maxLength": 255},
    pid={"type": "integer", "minimum": 0, "maximum": INT64_MAX},
    trace_id={"type": "string", "pattern": "^[0-9a-f]{32}$"},
    span_id={"type": "string", "pattern": "^[0-9a-f]{16}$"},
    metadata={"type": "object"},
    sent_at=STAMP,
    reason={"type": "string", "maxLength": 128},
    job_config=ref("JobFields"),
)

_WINDOW = obj(
    ["id", "name", "source", "jobs", "match", "start", "end", "active"],
    id=N_INT,
    name=N_STRING,
    source={"enum": ["config", "api"]},
    jobs={"type": "array", "items": STRING},
    match={"type": "object", "additionalProperties": STRING},
    schedule=N_STRING,
    timezone=STRING,
    duration=NUMBER,
    start=STAMP,
    end=STAMP,
    active={"type": "boolean"},
    reason=N_STRING,
    created_at=N_STAMP,
    ended_at=N_STAMP,
)

_JOB = obj(
    ["name", "state", "removed", "labels", "runs", "missed", "overlaps", "running"],
    name=STRING,
    state=ref("State"),
    reason=N_STRING,
    state_since=N_STAMP,
    removed={"type": "boolean"},
    schedule=N_STRING,
    every=N_NUMBER,
    timezone=N_STRING,
    labels={"type": "object", "additionalProperties": STRING},
    config={"type": "object"},
    sources={"type": "object", "additionalProperties": STRING},
    created_at=N_STAMP,
    last_event_at=N_STAMP,
    last_success=N_STAMP,
    last_failure=N_STAMP,
    last_start=N_STAMP,
    last_duration=N_NUMBER,
    next_expected=N_STAMP,
    expected_interval=N_NUMBER,
    running=INT,
    oldest_running_start=N_STAMP,
    consecutive_failures=INT,
    runs=COUNTS,
    missed=INT,
    overlaps=INT,
    slow_runs=INT,
    skipped=obj(["maintenance", "upstream"], maintenance=INT, upstream=INT),
    after={"type": "array", "items": STRING},
    downstream={"type": "array", "items": STRING},
    in_maintenance={"type": "boolean"},
    maintenance={"type": "array", "items": ref("MaintenanceWindow")},
    success_ratio_24h=N_NUMBER,
    miss_ratio_24h=N_NUMBER,
)

_RUN = obj(
    ["run_id", "started_at", "outcome", "flags"],
    run_id=STRING,
    slot=N_STAMP,
    scheduled_for=N_STAMP,
    started_at=STAMP,
    finished_at=N_STAMP,
    outcome=ref("RunOutcome"),
    late_outcome=nullable(ref("RunOutcome")),
    duration=N_NUMBER,
    attempt=N_INT,
    exit_code=N_INT,
    error_type=N_STRING,
    error_message=N_STRING,
    host=N_STRING,
    pid=N_INT,
    trace_id=N_STRING,
    span_id=N_STRING,
    count=N_INT,
    metadata=nullable({"type": "object"}),
    log=N_STRING,
    flags={
        "type": "array",
        "items": {"enum": ["late", "clock_skew", "overlap", "stale", "slow"]},
    },
)

_SLOT = obj(
    ["slot", "status", "count"],
    slot=STAMP,
    status={"enum": ["filled", "missed", "gap", "skipped"]},
    run_id=N_STRING,
    count=INT,
    reason=N_STRING,
    upstream=N_STRING,
)

_STATS = obj(
    ["window", "runs", "missed", "due", "duration"],
    window={"enum": ["1h", "24h", "7d", "30d"]},
    runs=COUNTS,
    missed=INT,
    due=INT,
    success_ratio=N_NUMBER,
    miss_ratio=N_NUMBER,
    duration=obj(
        ["count"],
        count=INT,
        **dict.fromkeys(("avg", "p50", "p95", "p99", "max"), N_NUMBER),
    ),
    time_since_last_success_seconds=N_NUMBER,
)

_HEALTH_JOB = obj(
    ["name", "is_healthy", "state"],
    name=STRING,
    is_healthy={"type": "boolean"},
    state=ref("State"),
    reason=N_STRING,
    last_successful_run=N_STAMP,
    time_since_last_success_seconds=N_NUMBER,
    recent=obj(["window"], window=STRING, success=INT, failed=INT, missed=INT),
)

SCHEMAS: dict[str, Any] = {
    "Error": obj(["error", "detail"], error=STRING, detail=STRING),
    "Status": obj(["status"], status=STRING),
    "Flag": {"enum": ["0", "1", "true", "false", "yes", "no"]},
    "State": {"enum": ["new", "up", "late", "down", "paused"]},
    "RunOutcome": {"enum": ["running", "success", "failure", "retry", "timeout", "cancelled"]},
    "Outcome": ref("RunOutcome"),
    "JobFields": {"type": "object", "properties": _JOB_FIELDS, "additionalProperties": False},
    "Event": _EVENT,
    "IngestResult": obj(
        ["accepted", "duplicates", "rejected", "warnings"],
        accepted=INT,
        duplicates=INT,
        rejected={
            "type": "array",
            "items": obj(["index", "field", "reason"], index=INT, field=STRING, reason=STRING),
        },
        warnings={"type": "array", "items": STRING},
    ),
    "Job": _JOB,
    "JobList": obj(["jobs"], jobs={"type": "array", "items": ref("Job")}),
    "Run": _RUN,
    "RunPage": obj(
        ["runs", "next_cursor"], runs={"type": "array", "items": ref("Run")}, next_cursor=N_STRING
    ),
    "MissedList": obj(["missed", "count"], missed={"type": "array", "items": _SLOT}, count=INT),
    "FlipList": obj(
        ["flips"],
        flips={
            "type": "array",
            "items": obj(
                ["at", "from", "to"],
                at=STAMP,
                reason=N_STRING,
                **{"from": ref("State"), "to": ref("State")},
            ),
        },
    ),
    "Stats": _STATS,
    "Health": obj(
        ["status", "is_healthy", "sidecar", "jobs"],
        status={"enum": ["ok", "degraded"]},
        is_healthy={"type": "boolean"},
        sidecar=obj(
            ["writer_healthy", "leader"],
            writer_healthy={"type": "boolean"},
            leader={"type": "boolean"},
        ),
        jobs={"type": "array", "items": _HEALTH_JOB},
    ),
    "MaintenanceWindow": _WINDOW,
    "MaintenanceList": obj(["windows"], windows={"type": "array", "items": _WINDOW}),
    "MaintenanceRequest": {
        "type": "object",
        "required": ["duration"],
        "properties": {
            "jobs": {"type": "array", "items": STRING, "minItems": 1},
            "match": {"type": "object", "additionalProperties": STRING, "minProperties": 1},
            "duration": DURATION,
            "reason": {"type": "string", "maxLength": 500},
            "start": STAMP,
        },
        "anyOf": [{"required": ["jobs"]}, {"required": ["match"]}],
    },
    "ReloadReport": obj(
        ["added", "updated", "removed"],
        **{k: {"type": "array", "items": STRING} for k in ("added", "updated", "removed")},
    ),
}

COMPONENTS: dict[str, Any] = {
    "schemas": SCHEMAS,
    "securitySchemes": {
        "bearer": {"type": "http", "scheme": "bearer", "description": "A token of the scope."},
        "basic": {"type": "http", "scheme": "basic", "description": "The token as password."},
        "cookie": {
            "type": "apiKey",
            "in": "cookie",
            "name": "jobpulse_token",
            "description": "Set by any GET with ?token=<token> (HttpOnly, SameSite=Strict).",
        },
    },
}
