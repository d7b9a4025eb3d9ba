"""`jobpulse replay`: its output contract, and agreement with a live sidecar fed the same events."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import func, select

from jobpulse.instrumentation.wire import format_ts
from jobpulse.sidecar import replay as replay_module
from jobpulse.sidecar.config import parse_config
from jobpulse.sidecar.domain.clock import ManualClock
from jobpulse.sidecar.http.app import create_app
from jobpulse.sidecar.http.keys import SIDECAR
from jobpulse.sidecar.replay import advance, read_events
from jobpulse.sidecar.settings import build_settings
from jobpulse.sidecar.store.outbox import OutboxRow
from tests.sidecar.harness import T0
from tests.sidecar.process import JOBPULSE

CONFIG = """
sidecar:
  catchup_delay: 0
jobs:
  - name: five
    schedule: "*/5 * * * *"
    max_runtime: 3m
  - name: poll
    every: 10m
  - name: picky
    schedule: "*/10 * * * *"
    failure_threshold: 2
    concurrency: forbid
"""


def _event(
    kind: str, job: str, rid: str, ts: float, arrive: float | None = None, **kw: Any
) -> dict[str, Any]:
    out = {"type": kind, "job": job, "run_id": rid, "ts": format_ts(ts), **kw}
    if arrive is not None:
        out["received_at"] = format_ts(arrive)
    return out


def scenario() -> list[dict[str, Any]]:
    ev = []
    # five: on time, early, late within grace, one missed (10:15), one late run, one stuck run
    ev += [_event("start", "five", "f0", T0 + 2), _event("success", "five", "f0", T0 + 30)]
    ev += [_event("start", "five", "f1", T0 + 280), _event("success", "five", "f1", T0 + 290)]
    ev += [
        _event("start", "five", "f2", T0 + 620),
        _event("failure", "five", "f2", T0 + 640, error_type="IOError"),
    ]
    ev += [_event("start", "five", "f3", T0 + 950), _event("success", "five", "f3", T0 + 960)]
    ev += [_event("start", "five", "f4", T0 + 1201)]  # never finishes: times out
    ev += [_event("success", "five", "f4", T0 + 1500, arrive=T0 + 1500)]  # after the timeout
    # poll: every 10m, one early run re-anchoring, then silence
    ev += [_event("start", "poll", "p0", T0 + 590), _event("success", "poll", "p0", T0 + 600)]
    ev += [_event("start", "poll", "p1", T0 + 900), _event("success", "poll", "p1", T0 + 901)]
    # picky: overlap under forbid, retries, a spooled event arriving late
    ev += [_event("start", "picky", "k0", T0 + 1), _event("start", "picky", "k1", T0 + 3)]
    ev += [_event("success", "picky", "k0", T0 + 20), _event("success", "picky", "k1", T0 + 21)]
    ev += [
        _event("start", "picky", "k2", T0 + 601, attempt=1),
        _event("failure", "picky", "k2", T0 + 602, attempt=1, will_retry=True),
        _event("start", "picky", "k3", T0 + 603, attempt=2),
        _event("success", "picky", "k3", T0 + 604, attempt=2),
    ]
    ev += [
        _event("start", "picky", "k4", T0 + 1201, arrive=T0 + 2400, sent_at=format_ts(T0 + 2400)),
        _event("success", "picky", "k4", T0 + 1210, arrive=T0 + 2400),
    ]
    # an auto-registered job and one invalid line
    ev += [_event("start", "adhoc", "a0", T0 + 100, job_config={"every": "5m"})]
    ev += [{"type": "start", "job": "Bad Name", "run_id": "x", "ts": format_ts(T0)}]
    return ev


UNTIL = T0 + 3600


def write(tmp_path: Path) -> tuple[Path, Path]:
    cfg = tmp_path / "jobpulse.yaml"
    cfg.write_text(CONFIG)
    events = tmp_path / "events.ndjson"
    events.write_text("\n".join(json.dumps(e) for e in scenario()) + "\n")
    return cfg, events


def run_replay(cfg: Path, events: Path) -> dict[str, Any]:
    proc = subprocess.run(
        [
            JOBPULSE,
            "replay",
            "--config",
            str(cfg),
            "--events",
            str(events),
            "--since",
            format_ts(T0 - 60),
            "--until",
            format_ts(UNTIL),
        ],
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr.decode()
    result: dict[str, Any] = json.loads(proc.stdout)
    return result


def test_replay_output(tmp_path: Path) -> None:
    out = run_replay(*write(tmp_path))
    assert out["since"] == format_ts(T0 - 60)
    assert out["until"] == format_ts(UNTIL)
    assert out["rejected"] == [
        {"line": len(scenario()), "field": "job", "reason": out["rejected"][0]["reason"]}
    ]
    five = out["jobs"]["five"]
    statuses = {s["slot"]: s["status"] for s in five["slots"]}
    assert statuses[format_ts(T0)] == "filled"
    assert statuses[format_ts(T0 + 300)] == "filled"  # the run at 10:04:40 was early
    assert statuses[format_ts(T0 + 600)] == "filled"
    assert statuses[format_ts(T0 + 900)] == "missed"  # 10:15:50 is past 30 s of grace
    runs = {r["run_id"]: r for r in five["runs"]}
    assert "late" in runs["f3"]["flags"]
    assert runs["f4"]["outcome"] == "timeout"
    assert runs["f4"]["late_outcome"] == "success"
    assert five["stats"]["runs"]["timeout"] == 1
    # picky: the overlap under `forbid` takes the new job down at once; the first success
    # recovers it; two missed slots (threshold 2) take it down at 10:31; the spooled run that
    # started at 10:20:01 arrives at 10:40 (late, fills nothing) and its success recovers it
    # then, not at its own timestamp; 10:40 and 10:50 are missed again
    assert [(f["at"], f["to"], f["reason"]) for f in out["jobs"]["picky"]["flips"]] == [
        (format_ts(T0 + 3), "down", "overlap"),
        (format_ts(T0 + 20), "up", None),
        (format_ts(T0 + 1860), "down", "missed"),
        (format_ts(T0 + 2400), "up", None),
        (format_ts(T0 + 3060), "down", "missed"),
    ]
    k4 = next(r for r in out["jobs"]["picky"]["runs"] if r["run_id"] == "k4")
    assert k4["outcome"] == "success"  # a late-delivered start waits for its finish
    assert "late" in k4["flags"]
    assert out["jobs"]["picky"]["stats"]["runs"]["retry"] == 1
    assert "adhoc" in out["jobs"]


def test_a_replay_queues_no_notifications_for_the_receivers_the_file_names(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The scenario flips `picky` down and up; with a receiver configured, the live sidecar
    # would queue outbox rows for each flip. A replay sends nothing, so it must queue nothing.
    text = CONFIG + "notify:\n  webhooks:\n    - name: ops\n      url: http://127.0.0.1:9/hook\n"
    cfg = parse_config(text)
    assert [r.name for r in cfg.notify.receivers] == ["ops"]
    events, _ = read_events(str(write(tmp_path)[1]))
    queued: list[int] = []
    real_report = replay_module.report

    def counting_report(sidecar: Any, since: float, until: float) -> dict[str, Any]:
        with sidecar.store.session() as session:
            queued.append(session.scalar(select(func.count()).select_from(OutboxRow)) or 0)
        return real_report(sidecar, since, until)

    monkeypatch.setattr(replay_module, "report", counting_report)
    out = replay_module.replay(cfg, events, None, UNTIL)
    assert len(out["jobs"]["picky"]["flips"]) == 5
    assert queued == [0]


def test_replay_bad_input_is_a_clear_error(tmp_path: Path) -> None:
    cfg, events = write(tmp_path)
    events.write_text("{not json\n")
    proc = subprocess.run(
        [
            JOBPULSE,
            "replay",
            "--config",
            str(cfg),
            "--events",
            str(events),
            "--until",
            format_ts(UNTIL),
        ],
        capture_output=True,
        timeout=60,
    )
    assert proc.returncode == 65
    assert b"events.ndjson:1" in proc.stderr
    proc = subprocess.run(
        [JOBPULSE, "replay", "--config", str(cfg), "--events", str(events), "--until", "tomorrow"],
        capture_output=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert b"--until" in proc.stderr


ClientFactory = Callable[..., Awaitable[TestClient[Any, Any]]]


async def test_replay_matches_a_live_sidecar_fed_the_same_events(
    tmp_path: Path, aiohttp_client: ClientFactory
) -> None:
    cfg_path, events_path = write(tmp_path)
    replayed = run_replay(cfg_path, events_path)

    file_cfg = parse_config(CONFIG)
    settings = build_settings({"store": f"sqlite:///{tmp_path}/live.db"}, {}, file_cfg.sidecar)
    clock = ManualClock(T0 - 60)
    client = await aiohttp_client(
        create_app(settings, clock=clock, file_config=file_cfg, run_evaluator=False)
    )
    sidecar = client.app[SIDECAR]
    records, _ = read_events(str(events_path))
    raw_lines = events_path.read_text().splitlines()
    for rec in records:
        advance(sidecar, clock, rec.received_at)
        wire = json.loads(raw_lines[rec.line - 1])
        wire.pop("received_at", None)
        resp = await client.post("/api/v1/events", json=[wire])
        assert resp.status == 200
    advance(sidecar, clock, UNTIL)

    for name, expected in replayed["jobs"].items():
        job = await (await client.get(f"/api/v1/jobs/{name}")).json()
        assert {"state": job["state"], "reason": job["reason"]} == expected["state"], name
        missed = await (await client.get(f"/api/v1/jobs/{name}/missed?hours=48")).json()
        assert sorted(s["slot"] for s in missed["missed"]) == sorted(
            s["slot"] for s in expected["slots"] if s["status"] == "missed"
        ), name
        runs = (await (await client.get(f"/api/v1/jobs/{name}/runs?limit=1000")).json())["runs"]
        live_runs = sorted(
            (
                r["run_id"],
                r["slot"],
                r["outcome"],
                r["started_at"],
                r["finished_at"],
                sorted(r["flags"]),
            )
            for r in runs
        )
        replay_runs = sorted(
            (
                r["run_id"],
                r["slot"],
                r["outcome"],
                r["started_at"],
                r["finished_at"],
                sorted(r["flags"]),
            )
            for r in expected["runs"]
        )
        assert live_runs == replay_runs, name
        flips = (await (await client.get(f"/api/v1/jobs/{name}/flips")).json())["flips"]
        assert list(reversed(flips)) == expected["flips"], name
