"""Fixtures for the generated alert rules, dashboards and deploy files.

Tests that need an external binary (promtool, amtool, prometheus, docker-compose) call
:func:`require_binary`: it skips with the reason when the binary is absent, and fails instead
when ``JOBPULSE_REQUIRE_SERVICES=1`` (CI installs them, so a missing one is a CI bug).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DEBIAN_PACKAGES = {
    "promtool": "prometheus",
    "prometheus": "prometheus",
    "amtool": "prometheus-alertmanager",
    "docker-compose": "docker-compose",
}


def require_binary(name: str) -> str:
    path = shutil.which(name)
    if path is not None:
        return path
    reason = f"{name} is not installed (Debian package {DEBIAN_PACKAGES.get(name, name)})"
    if os.environ.get("JOBPULSE_REQUIRE_SERVICES") == "1":
        pytest.fail(f"{reason}, and JOBPULSE_REQUIRE_SERVICES=1 requires it")
    pytest.skip(reason)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture(scope="session")
def promtool() -> str:
    return require_binary("promtool")


@pytest.fixture(scope="session")
def amtool() -> str:
    return require_binary("amtool")


@pytest.fixture(scope="session")
def docker_compose() -> str:
    return require_binary("docker-compose")


@pytest.fixture(scope="session")
def prometheus_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real, empty Prometheus on an ephemeral port: its query API parses our PromQL."""
    binary = require_binary("prometheus")
    folder = tmp_path_factory.mktemp("prometheus")
    config = folder / "prometheus.yml"
    config.write_text("global:\n  scrape_interval: 1m\n", encoding="utf-8")
    port = free_port()
    process = subprocess.Popen(
        [
            binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={folder / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=(folder / "prometheus.log").open("w"),
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"{url}/-/ready", timeout=2) as response:
                    if response.status == 200:
                        break
            except (urllib.error.URLError, ConnectionError):
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                log = (folder / "prometheus.log").read_text(encoding="utf-8")
                pytest.fail(f"prometheus did not become ready:\n{log[-2000:]}")
            time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


# Template variables a dashboard query may use, and what to put in their place before a
# PromQL parser sees the query.
DASHBOARD_VARIABLES = {
    "$__rate_interval": "1m",
    "$cluster": ".*",
    "$team": ".*",
    "$jobs": "backup|report",
    "$window": "24h",
    "$job_name": "backup",
}


def substitute(expr: str) -> str:
    for name, value in DASHBOARD_VARIABLES.items():
        expr = expr.replace(name, value)
    assert "$" not in expr, f"unknown template variable in {expr!r}"
    return expr


@pytest.fixture(scope="session")
def dashboards() -> dict[str, dict[str, object]]:
    from jobpulse.sidecar.generate import render_dashboards

    return {name: json.loads(text) for name, text in render_dashboards().items()}


def panels(board: dict[str, object]) -> Iterator[dict[str, object]]:
    for panel in board["panels"]:  # type: ignore[attr-defined]
        yield panel
        yield from panel.get("panels", [])


@pytest.fixture(scope="session")
def dashboard_exprs(dashboards: dict[str, dict[str, object]]) -> list[str]:
    """Every query of every dashboard, variables substituted, variable queries included."""
    exprs = []
    for board in dashboards.values():
        for panel in panels(board):
            exprs += [substitute(t["expr"]) for t in panel.get("targets", [])]
        for variable in board["templating"]["list"]:  # type: ignore[index]
            query = variable.get("query", "")
            if variable["type"] == "query":
                assert query.startswith("label_values(")
                series, _, label = query.removeprefix("label_values(").rpartition(", ")
                assert label in ("cluster)", "team)", "job_name)"), query
                exprs.append(substitute(series))
    return exprs


@pytest.fixture(scope="session")
def rule_exprs() -> list[str]:
    """Every rule expression of both profiles, with and without an extra selector."""
    import yaml

    from jobpulse.sidecar.generate import render_rules

    exprs = []
    for profile in ("default", "test"):
        for selector in ("", 'job="jobpulse", env=~"prod|staging"'):
            document = yaml.safe_load(render_rules(profile, selector))
            exprs += [rule["expr"] for group in document["groups"] for rule in group["rules"]]
    return exprs
