"""Maintenance windows over HTTP: open, list and end with the admin token; bad bodies are 400
naming the field; a job's API view and page show the window; /metrics exports the gauge."""

from __future__ import annotations

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

ClientFactory = Callable[..., Awaitable[TestClient[Any, Any]]]
ADMIN, READ = "admin-token", "read-token"
CONFIG = """
jobs:
  - name: db-backup
    schedule: "*/5 * * * *"
    grace: 1m
    labels: {team: data}
  - name: web-report
    schedule: "*/5 * * * *"
    grace: 1m
    labels: {team: web}
maintenance:
  - name: nightly
    match: {team: web}
    schedule: "0 2 * * *"
    duration: 2h
    timezone: Europe/Riga
"""
AS_ADMIN = {"Authorization": f"Bearer {ADMIN}"}
AS_READER = {"Authorization": f"Bearer {READ}"}


@pytest.fixture
async def client(aiohttp_client: ClientFactory, tmp_path: Path) -> TestClient[Any, Any]:
    path = tmp_path / "jobpulse.yaml"
    path.write_text(CONFIG)
    settings = Settings(
        store=f"sqlite:///{tmp_path}/s.db",
        catchup_delay=0,
        config=str(path),
        admin_tokens=(ADMIN,),
        read_tokens=(READ,),
    )
    app = create_app(settings, clock=ManualClock(T0 - 60), run_evaluator=False)
    return await aiohttp_client(app)


async def test_open_list_and_end_a_window(client: TestClient[Any, Any]) -> None:
    sidecar = client.app[SIDECAR]
    resp = await client.post(
        "/api/v1/maintenance",
        json={"jobs": ["db-backup"], "duration": "2h", "reason": "db upgrade"},
        headers=AS_ADMIN,
    )
    assert resp.status == 201
    window = await resp.json()
    assert window["source"] == "api"
    assert window["jobs"] == ["db-backup"]
    assert window["start"] == format_ts(T0 - 60)
    assert window["end"] == format_ts(T0 - 60 + 7200)
    assert window["active"] is True
    assert window["reason"] == "db upgrade"

    listed = (await (await client.get("/api/v1/maintenance", headers=AS_READER)).json())["windows"]
    assert [(w["source"], w["id"], w["name"]) for w in listed] == [
        ("config", None, "nightly"),
        ("api", window["id"], None),
    ]
    nightly = listed[0]
    assert nightly["active"] is False
    assert nightly["start"] == "2026-11-24T00:00:00Z"  # 02:00 in Riga (EET)

    job = await (await client.get("/api/v1/jobs/db-backup", headers=AS_READER)).json()
    assert job["in_maintenance"] is True
    assert [w["id"] for w in job["maintenance"]] == [window["id"]]
    other = await (await client.get("/api/v1/jobs/web-report", headers=AS_READER)).json()
    assert other["in_maintenance"] is False
    assert [w["name"] for w in other["maintenance"]] == ["nightly"]

    metrics = await (await client.get("/metrics", headers=AS_READER)).text()
    assert 'jobpulse_job_in_maintenance{job_name="db-backup"} 1' in metrics
    assert 'jobpulse_job_in_maintenance{job_name="web-report"} 0' in metrics

    page = await (await client.get("/jobs/db-backup", headers=AS_READER)).text()
    assert 'data-state="open"' in page
    assert "db upgrade" in page

    sidecar.clock.set(T0 + 600)
    sidecar.tick_sync()
    resp = await client.delete(f"/api/v1/maintenance/{window['id']}", headers=AS_ADMIN)
    assert resp.status == 200
    ended = await resp.json()
    assert ended["end"] == format_ts(T0 + 600)
    assert ended["ended_at"] == format_ts(T0 + 600)
    assert ended["active"] is False
    job = await (await client.get("/api/v1/jobs/db-backup", headers=AS_READER)).json()
    assert job["in_maintenance"] is False
    metrics = await (await client.get("/metrics", headers=AS_READER)).text()
    assert 'jobpulse_job_in_maintenance{job_name="db-backup"} 0' in metrics
    # Its slots while it was open were skipped, and are not in the missed list.
    missed = await (await client.get("/api/v1/jobs/db-backup/missed", headers=AS_READER)).json()
    assert missed["count"] == 0
    again = await client.delete(f"/api/v1/maintenance/{window['id']}", headers=AS_ADMIN)
    assert again.status == 409
    listed = (await (await client.get("/api/v1/maintenance", headers=AS_READER)).json())["windows"]
    assert [w["source"] for w in listed] == ["config"]


async def test_a_window_by_label_and_a_later_start(client: TestClient[Any, Any]) -> None:
    resp = await client.post(
        "/api/v1/maintenance",
        json={"match": {"team": "data"}, "duration": 600, "start": format_ts(T0 + 3600)},
        headers=AS_ADMIN,
    )
    assert resp.status == 201
    window = await resp.json()
    assert window["active"] is False
    assert window["match"] == {"team": "data"}
    job = await (await client.get("/api/v1/jobs/db-backup", headers=AS_READER)).json()
    assert job["in_maintenance"] is False
    assert job["maintenance"][0]["start"] == format_ts(T0 + 3600)
    sidecar = client.app[SIDECAR]
    sidecar.clock.set(T0 + 3600 + 1)
    sidecar.tick_sync()
    job = await (await client.get("/api/v1/jobs/db-backup", headers=AS_READER)).json()
    assert job["in_maintenance"] is True
    # Ending an upcoming window means it never opens.
    other = await client.post(
        "/api/v1/maintenance",
        json={"jobs": ["web-report"], "duration": "1h", "start": format_ts(T0 + 7200)},
        headers=AS_ADMIN,
    )
    other_id = (await other.json())["id"]
    resp = await client.delete(f"/api/v1/maintenance/{other_id}", headers=AS_ADMIN)
    assert resp.status == 200
    sidecar.clock.set(T0 + 7200 + 1)
    sidecar.tick_sync()
    job = await (await client.get("/api/v1/jobs/web-report", headers=AS_READER)).json()
    assert job["in_maintenance"] is False


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/api/v1/maintenance", {"jobs": ["db-backup"], "duration": "1h"}),
        ("DELETE", "/api/v1/maintenance/1", None),
    ],
)
async def test_writes_need_the_admin_token(
    client: TestClient[Any, Any], method: str, path: str, body: Any
) -> None:
    assert (await client.request(method, path, json=body)).status == 401
    assert (await client.request(method, path, json=body, headers=AS_READER)).status == 403
    assert (await client.get("/api/v1/maintenance")).status == 401


@pytest.mark.parametrize(
    ("body", "named"),
    [
        ({"duration": "1h"}, "jobs or match"),
        ({"jobs": ["db-backup"]}, "duration"),
        ({"jobs": ["db-backup"], "duration": "2x"}, "duration '2x' is not a duration"),
        ({"jobs": ["db-backup"], "duration": -5}, "duration -5"),
        ({"jobs": ["db-backup"], "duration": "40d"}, "longer than the maximum"),
        ({"jobs": [], "duration": "1h"}, "jobs [] must be a non-empty list"),
        ({"jobs": ["Bad Name!"], "duration": "1h"}, "jobs[0]"),
        ({"jobs": ["nope"], "duration": "1h"}, "jobs: no job named 'nope'"),
        ({"match": {}, "duration": "1h"}, "match {} must be a non-empty mapping"),
        ({"match": {"__x": "y"}, "duration": "1h"}, "match label '__x'"),
        ({"match": {"team": ["a"]}, "duration": "1h"}, "match label 'team' has value"),
        ({"jobs": ["db-backup"], "duration": "1h", "start": "tomorrow"}, "start:"),
        ({"jobs": ["db-backup"], "duration": "1h", "start": "2020-01-01T00:00:00Z"}, "past"),
        ({"jobs": ["db-backup"], "duration": "1h", "reason": 5}, "reason"),
        ({"jobs": ["db-backup"], "duration": "1h", "until": "x"}, "unknown field 'until'"),
        (["db-backup"], "JSON object"),
    ],
)
async def test_bad_bodies_are_400_naming_the_field(
    client: TestClient[Any, Any], body: Any, named: str
) -> None:
    resp = await client.post("/api/v1/maintenance", json=body, headers=AS_ADMIN)
    assert resp.status == 400
    error = await resp.json()
    assert error["error"] == "invalid maintenance window"
    assert named in error["detail"]


async def test_malformed_json_and_unknown_ids(client: TestClient[Any, Any]) -> None:
    resp = await client.post("/api/v1/maintenance", data=b"{", headers=AS_ADMIN)
    assert resp.status == 400
    assert (await client.delete("/api/v1/maintenance/999", headers=AS_ADMIN)).status == 404
    assert (await client.delete("/api/v1/maintenance/abc", headers=AS_ADMIN)).status == 404
