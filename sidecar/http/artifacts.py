"""``GET /alerts/rules.yml`` and ``GET /dashboards/{name}.json``: the generated alert rules and
Grafana dashboards, rendered once per process with this sidecar's runbook URL."""

from __future__ import annotations

import asyncio
from functools import lru_cache

from aiohttp import web

from .errors import json_error
from .keys import SIDECAR

__all__ = ["routes"]

routes = web.RouteTableDef()


@lru_cache(maxsize=8)
def _rules(runbook_url: str) -> str:
    from ..generate import RuleSettings, render_rules

    return render_rules(settings=RuleSettings(runbook_url=runbook_url))


@lru_cache(maxsize=1)
def _dashboards() -> dict[str, str]:
    from ..generate import render_dashboards

    return render_dashboards()


@routes.get("/alerts/rules.yml")
async def alert_rules(request: web.Request) -> web.Response:
    url = request.app[SIDECAR].settings.runbook_url
    text = await asyncio.to_thread(_rules, url)
    return web.Response(text=text, content_type="application/yaml")


@routes.get("/dashboards/{name}.json")
async def dashboard(request: web.Request) -> web.Response:
    boards = await asyncio.to_thread(_dashboards)
    name = request.match_info["name"]
    if name not in boards:
        return json_error(
            404,
            "unknown dashboard",
            f"no dashboard {name!r}; available: {', '.join(sorted(boards))}",
        )
    return web.Response(text=boards[name], content_type="application/json")
