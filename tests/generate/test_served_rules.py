"""``GET /alerts/rules.yml`` serves what ``jobpulse generate alerts`` writes from the same
``JOBPULSE_*`` environment, read when the app is built."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from jobpulse.instrumentation.errors import ConfigError
from jobpulse.sidecar.generate import render_rules, rule_settings
from jobpulse.sidecar.http.app import create_app
from jobpulse.sidecar.settings import Settings

ClientFactory = Callable[..., Awaitable[TestClient[Any, Any]]]
ENV = {
    "JOBPULSE_DASHBOARD_URL": "https://grafana.example.test",
    "JOBPULSE_SCRAPE_JOB": "jobpulse-sidecar",
    "JOBPULSE_ALERT_GROUP_BY": "cluster",
}


async def test_served_rules_follow_the_environment(
    aiohttp_client: ClientFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)
    settings = Settings(store=f"sqlite:///{tmp_path}/s.db", runbook_url="https://wiki.test/rb")
    client = await aiohttp_client(create_app(settings, run_evaluator=False))
    resp = await client.get("/alerts/rules.yml")
    assert resp.status == 200
    text = await resp.text()
    assert "https://grafana.example.test/" in text
    assert 'job="jobpulse-sidecar"' in text
    assert "https://wiki.test/rb" in text
    # byte for byte what `jobpulse generate alerts --runbook-url https://wiki.test/rb` writes
    cli = rule_settings({"runbook_url": "https://wiki.test/rb"}, ENV)
    assert text == render_rules(settings=cli)


def test_a_bad_alert_setting_fails_building_the_app(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JOBPULSE_SCRAPE_JOB", 'bad"job')
    with pytest.raises(ConfigError, match="JOBPULSE_SCRAPE_JOB"):
        create_app(Settings(store=f"sqlite:///{tmp_path}/s.db"), run_evaluator=False)
