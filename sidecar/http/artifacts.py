"""``GET /alerts/rules.yml`` and ``GET /dashboards/{name}.json``: the generated alert rules and
Grafana dashboards, rendered once per process. The rules use the settings ``jobpulse generate
alerts`` takes (runbook and dashboard URLs, scrape job, group-by labels), read from the same
``JOBPULSE_*`` variables by the same function when the app is built."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from functools import lru_cache

from aiohttp import web

from ..generate import RuleSettings, render_rules, rule_settings
from ..settings import Settings
from .errors import json_error

__all__ = ["RULE_SETTINGS", "routes", "served_rule_settings"]

routes = web.RouteTableDef()
RULE_SETTINGS = web.AppKey("rule_settings", RuleSettings)


def served_rule_settings(settings: Settings, env: Mapping[str, str]) -> RuleSettings:
    """What ``jobpulse generate alerts`` would use here: this sidecar's runbook URL (its own
    setting, itself from JOBPULSE_RUNBOOK_URL or an explicit value), the rest from ``env``.
    Raises ConfigError naming the variable of a bad value, so start-up fails on it."""
    return rule_settings({"runbook_url": settings.runbook_url}, env)


@lru_cache(maxsize=8)
def _rules(settings: RuleSettings) -> str:
    return render_rules(settings=settings)


@lru_cache(maxsize=1)
def _dashboards() -> dict[str, str]:
    from ..generate import render_dashboards

    return render_dashboards()


@routes.get("/alerts/rules.yml")
async def alert_rules(request: web.Request) -> web.Response:
    text = await asyncio.to_thread(_rules, request.app[RULE_SETTINGS])
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
