"""OpenAPI operations of the maintenance windows (``api_maintenance.py``); ``openapi.py``
assembles the document."""

from __future__ import annotations

from typing import Any

from .openapi_jobs import ADMIN, op
from .openapi_schemas import err, json_body, ref

__all__ = ["maintenance_paths"]


def maintenance_paths() -> dict[str, Any]:
    window = json_body("The window.", ref("MaintenanceWindow"))
    window_id = {
        "name": "id",
        "in": "path",
        "required": True,
        "description": "The window's id (windows of the configuration file have none).",
        "schema": {"type": "string", "pattern": "^[0-9]{1,18}$"},
    }
    return {
        "/api/v1/maintenance": {
            "get": op(
                "The open and upcoming maintenance windows: the configuration file's (their "
                "current or next span) and those opened through this API.",
                {"200": json_body("Windows.", ref("MaintenanceList"))},
                tag="maintenance",
            ),
            "post": op(
                "Open a maintenance window now (or from `start`) for `duration`, over the jobs "
                "named in `jobs` and/or those whose labels hold every pair of `match`.",
                {
                    "201": window,
                    "400": err("A bad body; the detail names the field."),
                },
                scope=ADMIN,
                body={
                    "required": True,
                    "content": {"application/json": {"schema": ref("MaintenanceRequest")}},
                },
                tag="maintenance",
            ),
        },
        "/api/v1/maintenance/{id}": {
            "parameters": [window_id],
            "delete": op(
                "End a window now (an upcoming one never opens).",
                {
                    "200": window,
                    "404": err("No such window."),
                    "409": err("The window has already closed."),
                },
                scope=ADMIN,
                tag="maintenance",
            ),
        },
    }
