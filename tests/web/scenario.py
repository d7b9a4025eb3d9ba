"""A scripted fleet under a manual clock, shared by the page, browser and CLI tests.

At the end (10:03 UTC on Monday 2026-11-23):
- ``backup`` up (runs every 10 minutes, label team=data),
- ``report`` down, reason missed (configured, never reported),
- ``import`` down, reason failed (its 10:00 run failed with a ``<script>`` message, and one of
  its labels holds a ``<script>`` too),
- ``sync`` late (its 10:00 slot is due, no run yet, grace 10m),
- ``cleanup`` paused, ``adhoc`` new (unscheduled, never reported).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from jobpulse.instrumentation.wire import Event, format_ts, parse_event
from jobpulse.sidecar.config import parse_config
from jobpulse.sidecar.domain.clock import ManualClock
from jobpulse.sidecar.http.app import create_app
from jobpulse.sidecar.http.keys import SIDECAR
from jobpulse.sidecar.settings import Settings

T_START = datetime(2026, 11, 23, 8, 0, tzinfo=UTC).timestamp()
T_END = datetime(2026, 11, 23, 10, 3, tzinfo=UTC).timestamp()
EVIL = "<script>alert(1)</script>"

HEALTHY_CONFIG = """
jobs:
  - name: backup
    schedule: "*/10 * * * *"
    labels: {team: data}
  - name: sync
    schedule: "*/30 * * * *"
    grace: 10m
  - name: cleanup
    schedule: "0 3 * * *"
    paused: true
  - name: adhoc
"""
FAILING_CONFIG = (
    HEALTHY_CONFIG
    + f"""
  - name: report
    schedule: "0 * * * *"
    labels: {{team: data}}
  - name: import
    schedule: "0 * * * *"
    labels: {{team: ops, note: "{EVIL}"}}
"""
)
STATES = {
    "backup": ("up", None),
    "sync": ("late", None),
    "cleanup": ("paused", None),
    "adhoc": ("new", None),
    "report": ("down", "missed"),
    "import": ("down", "failed"),
}


def _run(
    job: str, start: float, duration: float, outcome: str = "success", **extra: object
) -> list[Event]:
    rid = uuid.uuid4().hex
    raw_start = {"type": "start", "job": job, "run_id": rid, "ts": format_ts(start)}
    raw_end = {
        "type": outcome,
        "job": job,
        "run_id": rid,
        "ts": format_ts(start + duration),
        "duration": duration,
        **extra,
    }
    return [parse_event(raw_start)[0], parse_event(raw_end)[0]]


def build_app(tmp_path: object, *, failing: bool = True, **settings: Any) -> web.Application:
    """The app with the scenario's configuration, its clock at T_START (not played yet)."""
    clock = ManualClock(T_START)
    cfg = parse_config(FAILING_CONFIG if failing else HEALTHY_CONFIG)
    return create_app(
        Settings(store=f"sqlite:///{tmp_path}/s.db", catchup_delay=0, **settings),
        clock=clock,
        file_config=cfg,
        run_evaluator=False,
    )


def play(app: web.Application, *, failing: bool = True) -> None:
    """Feed the scenario's events and move its clock to T_END (the app must be started)."""
    sidecar = app[SIDECAR]
    clock = sidecar.clock
    assert isinstance(clock, ManualClock)
    for step in range(13):
        slot = T_START + step * 600
        events: list[Event] = []
        events += _run("backup", slot + 5, 20.0 + 7 * (step % 5))
        if step % 3 == 0 and step < 12:
            events += _run("sync", slot + 3, 4.0)
        if failing and step == 6:
            events += _run("import", slot + 2, 12.5)
        if failing and step == 12:
            events += _run(
                "import",
                slot + 2,
                3.25,
                "failure",
                error_type="RuntimeError",
                error_message=f"disk full {EVIL}",
                trace_id="ab" * 16,
            )
        clock.set(max(clock.now(), slot + 120))
        if events:
            result = sidecar.ingest_sync(events)
            assert not result.rejected, result.rejected
        sidecar.tick_sync()
    clock.set(T_END)
    sidecar.tick_sync()
