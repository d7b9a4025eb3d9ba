"""The jobpulse Grafana dashboards, by name, as deterministic JSON."""

from __future__ import annotations

import json
from collections.abc import Callable

from grafana_foundation_sdk.builders import dashboard as builder
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import dashboard as model

from jobpulse.sidecar.generate.fleet import fleet_overview
from jobpulse.sidecar.generate.job_detail import job_detail
from jobpulse.sidecar.generate.promql import Selector
from jobpulse.sidecar.generate.sidecar_health import sidecar_health

__all__ = ["DASHBOARDS", "dashboard_json"]

# File name (dashboards/<name>.json, GET /dashboards/<name>.json) -> builder.
DASHBOARDS: dict[str, Callable[[Selector], builder.Dashboard]] = {
    "fleet-overview": fleet_overview,
    "job-detail": job_detail,
    "sidecar-health": sidecar_health,
}


def _number_panels(board: model.Dashboard) -> None:
    """Panel ids 1, 2, ... in layout order, rows and the panels inside them included."""
    number = 0
    for panel in board.panels or []:
        number += 1
        panel.id_val = number
        for inner in getattr(panel, "panels", None) or []:
            number += 1
            inner.id_val = number


def dashboard_json(name: str, selector: Selector) -> str:
    board = DASHBOARDS[name](selector).build()
    _number_panels(board)
    return json.dumps(board, cls=JSONEncoder, sort_keys=True, indent=2) + "\n"
