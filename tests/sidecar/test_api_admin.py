"""Reload, pause/resume, PUT/DELETE, stats and health over HTTP."""

from __future__ import annotations

import json
import logging
import signal
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from jobpulse.instrumentation.wire import format_ts
from jobpulse.sidecar.domain.clock import ManualClock
from jobpulse.sidecar.http.app import create_app
from jobpulse.sidecar.http.keys import SIDECAR
from jobpulse.sidecar.settings import Settings
from tests.sidecar.harness import T0
from tests.sidecar.process import Served

ClientFactory = Callable[..., Awaitable[TestClient[Any, Any]]]
CONFIG = """
jobs:
  - name: keep
    schedule: "*/5 * * * *"
    grace: 1m
  - name: drop
    schedule: "*/5 * * * *"
"""


@pytest.fixture
async def client(aiohttp_client: ClientFactory, tmp_path: Path) -> TestClient[Any, Any]:
    path = tmp_path / "jobpulse.yaml"
    path.write_text(CONFIG)
    settings = Settings(store=f"sqlite:///{tmp_path}/s.db", catchup_delay=0, config=str(path))
    app = create_app(settings, clock=ManualClock(T0 - 60), run_evaluator=False)
    return await aiohttp_client(app)


def ev(kind: str, job: str, rid: str, ts: float, **kw: Any) -> dict[str, Any]:
    return {"type": kind, "job": job, "run_id": rid, "ts": format_ts(ts), **kw}


async def test_reload_removes_a_job_but_keeps_its_history(
    client: TestClient[Any, Any], tmp_path: Path
) -> None:
    await client.post(
        "/api/v1/events?wait=applied",
        json=[ev("start", "drop", "d1", T0 + 1), ev("success", "drop", "d1", T0 + 2)],
    )
    assert 'job_name="drop"' in await (await client.get("/metrics")).text()
    (tmp_path / "jobpulse.yaml").write_text(
        'jobs:\n  - name: keep\n    schedule: "*/5 * * * *"\n  - name: added\n    every: 1h\n'
    )
    resp = await client.post("/api/v1/config/reload")
    assert resp.status == 200
    report = await resp.json()
    assert report["removed"] == ["drop"]
    assert report["added"] == ["added"]
    assert report["updated"] == ["keep"]  # its grace went back to the default
    sidecar = client.app[SIDECAR]
    sidecar.clock.set(T0 + 3 * 3600)
    sidecar.tick_sync()
    drop = await (await client.get("/api/v1/jobs/drop")).json()
    assert drop["removed"] is True
    assert drop["missed"] == 0  # no longer evaluated
    assert drop["runs"]["success"] == 1  # history kept
    names = [j["name"] for j in (await (await client.get("/api/v1/jobs")).json())["jobs"]]
    assert "drop" not in names
    assert "added" in names
    removed = await (await client.get("/api/v1/jobs?removed=1")).json()
    assert "drop" in [j["name"] for j in removed["jobs"]]
    assert 'job_name="drop"' not in await (await client.get("/metrics")).text()
    keep = await (await client.get("/api/v1/jobs/keep")).json()
    assert keep["missed"] > 0


async def test_bad_reload_keeps_the_running_configuration(
    client: TestClient[Any, Any], tmp_path: Path
) -> None:
    (tmp_path / "jobpulse.yaml").write_text("jobs:\n  - name: keep\n    grace: soon\n")
    resp = await client.post("/api/v1/config/reload")
    assert resp.status == 422
    assert "grace 'soon'" in (await resp.json())["detail"]
    keep = await (await client.get("/api/v1/jobs/keep")).json()
    assert keep["config"]["grace"] == 60


async def test_pause_and_resume(client: TestClient[Any, Any]) -> None:
    resp = await client.post("/api/v1/jobs/keep/pause")
    assert resp.status == 200
    assert (await resp.json())["state"] == "paused"
    sidecar = client.app[SIDECAR]
    sidecar.clock.set(T0 + 3600)
    sidecar.tick_sync()
    missed = await (await client.get("/api/v1/jobs/keep/missed")).json()
    assert missed["count"] == 0
    resp = await client.post("/api/v1/jobs/keep/resume")
    assert (await resp.json())["state"] == "new"
    assert (await client.post("/api/v1/jobs/nope/pause")).status == 404


async def test_put_creates_updates_and_refuses_file_fields(client: TestClient[Any, Any]) -> None:
    resp = await client.put("/api/v1/jobs/api-made", json={"every": "30m", "labels": {"team": "x"}})
    assert resp.status == 201
    body = await resp.json()
    assert body["every"] == 1800
    assert body["sources"] == {"every": "declared", "labels": "declared"}
    resp = await client.put("/api/v1/jobs/api-made", json={"every": "45m"})
    assert resp.status == 200
    assert (await resp.json())["every"] == 2700
    resp = await client.put("/api/v1/jobs/api-made", json={"every": "often"})
    assert resp.status == 422
    assert "every 'often'" in (await resp.json())["detail"]
    resp = await client.put("/api/v1/jobs/keep", json={"grace": "5m"})
    assert resp.status == 409
    assert "configuration file" in (await resp.json())["detail"]
    resp = await client.put("/api/v1/jobs/keep", json={"labels": {"team": "web"}})
    assert resp.status == 200  # a field the file does not set
    resp = await client.put(
        "/api/v1/jobs/api-made", data="nope", headers={"Content-Type": "application/json"}
    )
    assert resp.status == 400


async def test_stats_window(client: TestClient[Any, Any]) -> None:
    events = []
    for i, d in enumerate([10.0, 20.0, 30.0, 40.0]):
        events += [
            ev("start", "keep", f"s{i}", T0 + 300 * i),
            ev("success", "keep", f"s{i}", T0 + 300 * i + d, duration=d),
        ]
    events += [ev("start", "keep", "f", T0 + 1200), ev("failure", "keep", "f", T0 + 1201)]
    await client.post("/api/v1/events?wait=applied", json=events)
    stats = await (await client.get("/api/v1/jobs/keep/stats?window=24h")).json()
    assert stats["runs"]["success"] == 4
    assert stats["runs"]["failure"] == 1
    assert stats["success_ratio"] == pytest.approx(0.8)
    assert stats["duration"]["max"] == 40
    assert stats["duration"]["avg"] == pytest.approx(20.2)
    assert 30 <= stats["duration"]["p50"] <= 30 * 1.05 or 20 <= stats["duration"]["p50"] <= 21
    assert stats["duration"]["p99"] == 40
    assert stats["time_since_last_success_seconds"] is not None
    resp = await client.get("/api/v1/jobs/keep/stats?window=2d")
    assert resp.status == 422


async def test_health(client: TestClient[Any, Any]) -> None:
    await client.post(
        "/api/v1/events?wait=applied",
        json=[ev("start", "keep", "h", T0 + 1), ev("failure", "keep", "h", T0 + 2)],
    )
    body = await (await client.get("/api/v1/health")).json()
    assert body["status"] == "degraded"
    jobs = {j["name"]: j for j in body["jobs"]}
    assert jobs["keep"]["is_healthy"] is False
    assert jobs["keep"]["recent"]["failed"] == 1
    assert jobs["drop"]["is_healthy"] is True


def test_sighup_reloads_the_file(tmp_path: Path) -> None:
    served = Served(tmp_path, CONFIG).start()
    try:
        served.config.write_text('jobs:\n  - name: keep\n    schedule: "*/5 * * * *"\n')
        assert served.proc is not None
        served.proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            _, body = served.get("/api/v1/jobs/drop")
            if json.loads(body)["removed"]:
                break
            time.sleep(0.1)
        assert json.loads(served.get("/api/v1/jobs/drop")[1])["removed"] is True
        assert "configuration reloaded" in served.log.read_text()
    finally:
        served.stop()


async def test_put_conflict_logs_one_line_without_traceback(
    client: TestClient[Any, Any], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, "jobpulse")
    resp = await client.put("/api/v1/jobs/keep", json={"grace": "5m"})
    assert resp.status == 409
    assert (await resp.json())["error"] == "conflict"
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert not [r for r in caplog.records if r.exc_info]
    refused = [r for r in caplog.records if "grace set by the configuration file" in r.getMessage()]
    assert len(refused) == 1
    assert refused[0].levelno == logging.INFO
    assert "\n" not in refused[0].getMessage()
