"""Generated Prometheus alert rules and Grafana dashboards (``jobpulse generate``).

The sidecar serves the same text at ``GET /alerts/rules.yml`` and ``GET /dashboards/{name}.json``;
the committed copies under ``alerts/`` and ``dashboards/`` are regenerated and diffed in CI.
Both renderers are deterministic: the same arguments give the same bytes.
"""

from __future__ import annotations

import json
import os
import sys
from argparse import Namespace
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from jobpulse.instrumentation.errors import ConfigError
from jobpulse.sidecar.generate.alerts import PROFILES, rule_groups
from jobpulse.sidecar.generate.dashboards import DASHBOARDS, dashboard_json
from jobpulse.sidecar.generate.promql import Selector
from jobpulse.sidecar.generate.rules import RuleSettings, rules_yaml

__all__ = [
    "PROFILES",
    "RuleSettings",
    "main",
    "render_dashboards",
    "render_rules",
    "rule_settings",
]

EX_USAGE = 2


def render_rules(
    profile: str = "default", selector: str = "", *, settings: RuleSettings | None = None
) -> str:
    """The alerting rules file (YAML) for ``profile`` ("default" or "test")."""
    if profile not in PROFILES:
        raise ConfigError(f"profile {profile!r} is unknown; expected one of {sorted(PROFILES)}")
    settings = settings or RuleSettings()
    return rules_yaml(rule_groups(PROFILES[profile], Selector(selector), settings), settings)


def render_dashboards(selector: str = "") -> dict[str, str]:
    """Every dashboard as JSON text, by name (``fleet-overview``, ``job-detail``, ...)."""
    sel = Selector(selector)
    return {name: dashboard_json(name, sel) for name in DASHBOARDS}


def _write_dashboards(boards: dict[str, str], output: str | None) -> None:
    if output is None:
        decoded = {name: json.loads(text) for name, text in boards.items()}
        sys.stdout.write(json.dumps(decoded, sort_keys=True, indent=2) + "\n")
        return
    folder = Path(output)
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in boards.items():
        (folder / f"{name}.json").write_text(text, encoding="utf-8")


# The generator's settings: flag (or the sidecar's own setting), then environment variable, then
# RuleSettings' default. `jobpulse generate alerts` and the sidecar's GET /alerts/rules.yml both
# read them through rule_settings.
ENVIRONMENT = {
    "runbook_url": "JOBPULSE_RUNBOOK_URL",
    "dashboard_url": "JOBPULSE_DASHBOARD_URL",
    "scrape_job": "JOBPULSE_SCRAPE_JOB",
    "group_by": "JOBPULSE_ALERT_GROUP_BY",
}


def rule_settings(flags: Mapping[str, object], env: Mapping[str, str]) -> RuleSettings:
    """The rule settings from explicit values (``jobpulse generate`` flags by their dest, or
    the sidecar's settings) and the ``JOBPULSE_*`` environment. A bad value raises
    :class:`ConfigError` naming the flag or variable it came from."""
    values: dict[str, str] = {}
    origins: list[str] = []  # of the values RuleSettings checks (the URLs are taken as given)
    for name, variable in ENVIRONMENT.items():
        flag = flags.get(name)
        if flag is not None:
            values[name] = str(flag)
            origin = f"--{name.replace('_', '-')}"
        elif env.get(variable, "").strip():
            values[name] = env[variable].strip()
            origin = variable
        else:
            continue
        if name in ("scrape_job", "group_by"):
            origins.append(origin)
    kwargs: dict[str, Any] = {}
    if "runbook_url" in values:
        kwargs["runbook_url"] = values["runbook_url"]
    if "dashboard_url" in values:
        kwargs["grafana_url"] = values["dashboard_url"]
    if "scrape_job" in values:
        kwargs["scrape_job"] = values["scrape_job"]
    if "group_by" in values:
        kwargs["group_by"] = tuple(x.strip() for x in values["group_by"].split(",") if x.strip())
    try:
        return RuleSettings(**kwargs)
    except ConfigError as exc:
        if not origins:
            raise
        raise ConfigError(f"{exc} (set by {', '.join(origins)})") from None


def main(args: Namespace) -> int:
    """``jobpulse generate alerts|dashboards [--profile] [--selector] [--runbook-url]
    [--dashboard-url] [--scrape-job] [--group-by] [-o PATH]``."""
    try:
        if args.what == "alerts":
            settings = rule_settings(vars(args), os.environ)
            text = render_rules(args.profile, args.selector, settings=settings)
            if args.output is None:
                sys.stdout.write(text)
            else:
                Path(args.output).write_text(text, encoding="utf-8")
        else:
            _write_dashboards(render_dashboards(args.selector), args.output)
    except ConfigError as exc:
        print(f"jobpulse generate: {exc}", file=sys.stderr)
        return EX_USAGE
    return 0
