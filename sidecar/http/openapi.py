"""The OpenAPI 3.1 document of the sidecar's HTTP API, built in code and served (read scope) at
``GET /api/v1/openapi.json``. ``tests/security/test_openapi.py`` keeps it true: every route the
app registers is described here and every operation here is a route; schemathesis calls each
operation and checks the answers against these schemas.

Schemas live in ``openapi_schemas.py``, the /api/v1/jobs operations in ``openapi_jobs.py``, the
maintenance windows' in ``openapi_maintenance.py``.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from jobpulse.instrumentation.cli import package_version

from .openapi_jobs import ADMIN, INGEST, READ, job_paths, op, query
from .openapi_maintenance import maintenance_paths
from .openapi_schemas import COMPONENTS, JOB_PARAM, err, json_body, ref, text_body

__all__ = ["ROUTE_ALIASES", "document", "openapi_handler"]

# aiohttp routes that the document describes under friendlier paths: (method, path) pairs.
# Pings: GET (and the HEAD aiohttp adds to it) and POST; any other method gets a 405, which is
# no operation.
_PINGS = ("/ping/{job}", "/ping/{job}/{action}")
ROUTE_ALIASES: dict[tuple[str, str], set[tuple[str, str]]] = {
    ("GET", "/ping/{tail}"): {(m, p) for m in ("GET", "HEAD") for p in _PINGS},
    ("POST", "/ping/{tail}"): {("POST", p) for p in _PINGS},
    ("*", "/ping/{tail}"): set(),
}


def _sidecar_ops() -> dict[str, Any]:
    ping = op(
        "Healthchecks-style ping. With tokens configured the path starts with the ping key: "
        "/ping/{ping_key}/{job}[/{action}].",
        {
            "200": text_body("OK."),
            "400": text_body("A bad job name, exit status or rid."),
            "403": text_body("Ping key wrong or missing, or the job cap is reached."),
            "404": text_body("Unknown job (add ?create=1) or action."),
            "413": err("The body is over the limit."),
            "429": err("The job is over its rate limit; see Retry-After."),
            "503": text_body("The store cannot take writes; retry."),
        },
        scope=None,
        tag="ingest",
        params=[
            query("rid", "The run id (1-64 characters).", {"type": "string"}),
            query("create", "1 registers an unknown job.", ref("Flag")),
        ],
    )
    action = {
        "name": "action",
        "in": "path",
        "required": True,
        "description": "start, fail, log or an exit status 0-255.",
        "schema": {"type": "string", "pattern": "^(start|fail|log|[0-9]{1,3})$"},
    }
    return {
        "/api/v1/events": {
            "post": op(
                "Ingest heartbeat events: a JSON array (or one object) or NDJSON.",
                {
                    "200": json_body("Durable; per-event rejections listed.", ref("IngestResult")),
                    "400": err("The body is not JSON."),
                    "413": err("The body or the batch is over its limit."),
                    "415": err("Not JSON or NDJSON."),
                    "429": err("Every event is over its job's rate limit; see Retry-After."),
                    "503": err("The store cannot take writes; nothing accepted; retry."),
                },
                scope=INGEST,
                tag="ingest",
                body={
                    "required": True,
                    "content": {
                        "application/json": {"schema": {"type": "array", "items": ref("Event")}},
                        "application/x-ndjson": {"schema": {"type": "string"}},
                    },
                },
            )
        },
        "/v1/traces": {
            "post": op(
                "OTLP/HTTP span ingest: spans of instrumented jobs become runs.",
                {
                    "200": {"description": "Accepted (an OTLP ExportTraceServiceResponse)."},
                    "400": err("Not an OTLP trace export."),
                    "413": err("The body is over the limit."),
                    "415": err("Not protobuf or JSON."),
                    "503": err("The store cannot take writes; retry."),
                },
                scope=INGEST,
                tag="ingest",
                body={
                    "required": True,
                    "content": {
                        "application/x-protobuf": {"schema": {"type": "string"}},
                        "application/json": {"schema": {"type": "object"}},
                    },
                },
            )
        },
        "/ping/{job}": {"parameters": [JOB_PARAM], "get": ping, "post": ping, "head": ping},
        "/ping/{job}/{action}": {
            "parameters": [JOB_PARAM, action],
            "get": ping,
            "post": ping,
            "head": ping,
        },
        "/api/v1/health": {
            "get": op("Sidecar and per-job health.", {"200": json_body("Health.", ref("Health"))})
        },
        "/api/v1/config/reload": {
            "post": op(
                "Re-read the configuration file.",
                {
                    "200": json_body("What changed.", ref("ReloadReport")),
                    "422": err("The file is invalid; the previous configuration stays."),
                },
                scope=ADMIN,
            )
        },
        "/api/v1/openapi.json": {
            "get": op("This document.", {"200": json_body("OpenAPI 3.1.", {"type": "object"})})
        },
        "/metrics": {
            "get": op("Prometheus exposition.", {"200": text_body("Metrics.")}, tag="metrics")
        },
        "/healthz": {
            "get": op(
                "Liveness.", {"200": json_body("Alive.", ref("Status"))}, scope=None, tag="metrics"
            )
        },
        "/readyz": {
            "get": op(
                "Readiness: store reachable, last commit good, evaluator current on the leader.",
                {"200": json_body("Ready.", ref("Status")), "503": err("Not ready, and why.")},
                scope=None,
                tag="metrics",
            )
        },
        "/alerts/rules.yml": {
            "get": op(
                "Generated Prometheus alerting rules.",
                {
                    "200": {
                        "description": "Rules.",
                        "content": {"application/yaml": {"schema": {"type": "object"}}},
                    }
                },
                tag="artifacts",
            )
        },
        "/dashboards/{name}.json": {
            "get": op(
                "A generated Grafana dashboard.",
                {
                    "200": json_body("The dashboard.", {"type": "object"}),
                    "404": err("No such dashboard."),
                },
                tag="artifacts",
                params=[
                    {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}
                ],
            )
        },
        "/": {
            "get": op(
                "The status page (HTML).",
                {"200": _html("The fleet."), "422": _html("A bad filter.")},
                tag="pages",
            )
        },
        "/jobs/{job}": {
            "parameters": [JOB_PARAM],
            "get": op(
                "A job's page (HTML).",
                {"200": _html("The job."), "404": _html("No such job.")},
                tag="pages",
            ),
        },
    }


def _html(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"text/html": {"schema": {"type": "string"}}}}


def document() -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "jobpulse sidecar",
            "version": package_version(),
            "description": "Heartbeat ingest, job state and history, metrics and artifacts.",
        },
        "paths": {**job_paths(), **maintenance_paths(), **_sidecar_ops()},
        "components": COMPONENTS,
        "security": READ,
    }


async def openapi_handler(request: web.Request) -> web.Response:
    return web.json_response(document())
