"""OpenAPI operations: how one is described (its scope, the auth errors it may answer), and
the job endpoints under /api/v1/jobs. ``openapi.py`` assembles the document."""

from __future__ import annotations

from typing import Any

from .openapi_schemas import JOB_PARAM, err, json_body, ref

__all__ = ["ADMIN", "INGEST", "READ", "job_paths", "op", "query"]

READ: list[dict[str, list[str]]] = [{"bearer": []}, {"basic": []}, {"cookie": []}]
ADMIN, INGEST = "admin", "ingest"
AUTH_ERRORS = {"401": err("No token, or an unknown one."), "403": err("The token's scope.")}


def query(name: str, description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "schema": schema,
        "description": description,
    }


def op(
    summary: str,
    responses: dict[str, Any],
    *,
    scope: str | None = "read",
    params: list[dict[str, Any]] | None = None,
    body: dict[str, Any] | None = None,
    tag: str = "api",
) -> dict[str, Any]:
    op: dict[str, Any] = {"summary": summary, "tags": [tag], "responses": dict(responses)}
    if scope is None:
        op["security"] = []
    else:
        op["description"] = f"Needs a token of the {scope} scope when tokens are configured."
        op["x-jobpulse-scope"] = scope
        op["responses"].update(AUTH_ERRORS)
    if params:
        op["parameters"] = params
    if body is not None:
        op["requestBody"] = body
    return op


def job_paths() -> dict[str, Any]:
    job = {"200": json_body("The job.", ref("Job")), "404": err("No such job.")}
    limit = query("limit", "Most rows.", {"type": "integer", "minimum": 1, "maximum": 1000})
    stamp = {"type": "string", "format": "date-time"}
    return {
        "/api/v1/jobs": {
            "get": op(
                "List jobs with state, last success, next expected run and 24h ratios.",
                {
                    "200": json_body("Jobs.", ref("JobList")),
                    "422": err("A bad state or label filter."),
                },
                params=[
                    query("state", "Only jobs in this state.", ref("State")),
                    query(
                        "label",
                        "key=value; repeat to AND.",
                        {"type": "array", "items": {"type": "string"}},
                    ),
                    query("removed", "1 to include jobs removed from the file.", ref("Flag")),
                ],
            )
        },
        "/api/v1/jobs/{job}": {
            "parameters": [JOB_PARAM],
            "get": op("One job.", job),
            "put": op(
                "Declare or update a job's fields (fields the file sets cannot be changed).",
                {
                    **job,
                    "201": json_body("Created.", ref("Job")),
                    "400": err("The body is not JSON."),
                    "409": err("A field is set by the configuration file."),
                    "422": err("An invalid field."),
                },
                scope=ADMIN,
                body={
                    "required": True,
                    "content": {"application/json": {"schema": ref("JobFields")}},
                },
            ),
            "delete": op(
                "Delete a job and its history.",
                {"204": {"description": "Deleted."}, "404": err("No such job.")},
                scope=ADMIN,
            ),
        },
        "/api/v1/jobs/{job}/pause": {
            "parameters": [JOB_PARAM],
            "post": op("Pause evaluation (runs are still recorded).", job, scope=ADMIN),
        },
        "/api/v1/jobs/{job}/resume": {
            "parameters": [JOB_PARAM],
            "post": op("Resume evaluation from now.", job, scope=ADMIN),
        },
        "/api/v1/jobs/{job}/runs": {
            "parameters": [JOB_PARAM],
            "get": op(
                "Run history, newest first, keyset paginated (JSON or CSV).",
                {
                    "200": {
                        "description": "Runs.",
                        "content": {
                            "application/json": {"schema": ref("RunPage")},
                            "text/csv": {"schema": {"type": "string"}},
                        },
                    },
                    "404": err("No such job."),
                    "422": err("A bad filter, limit or cursor."),
                },
                params=[
                    query("outcome", "Only this outcome.", ref("Outcome")),
                    query("since", "Runs started at or after.", stamp),
                    query("until", "Runs started before.", stamp),
                    query("q", "Text in the error type or message.", {"type": "string"}),
                    limit,
                    query("cursor", "next_cursor of the previous page.", {"type": "string"}),
                    query("format", "json or csv.", {"enum": ["json", "csv"]}),
                ],
            ),
        },
        "/api/v1/jobs/{job}/missed": {
            "parameters": [JOB_PARAM],
            "get": op(
                "Missed slots (and gap records) of the last hours.",
                {
                    "200": json_body("Missed slots.", ref("MissedList")),
                    "404": err("No such job."),
                    "422": err("A bad hours value."),
                },
                params=[
                    query(
                        "hours", "How far back.", {"type": "integer", "minimum": 1, "maximum": 9600}
                    )
                ],
            ),
        },
        "/api/v1/jobs/{job}/flips": {
            "parameters": [JOB_PARAM],
            "get": op(
                "State changes, newest first.",
                {
                    "200": json_body("Flips.", ref("FlipList")),
                    "404": err("No such job."),
                    "422": err("A bad limit."),
                },
                params=[limit],
            ),
        },
        "/api/v1/jobs/{job}/stats": {
            "parameters": [JOB_PARAM],
            "get": op(
                "Statistics over a window, from hourly rollups.",
                {
                    "200": json_body("Statistics.", ref("Stats")),
                    "404": err("No such job."),
                    "422": err("A bad window."),
                },
                params=[query("window", "The window.", {"enum": ["1h", "24h", "7d", "30d"]})],
            ),
        },
    }
