"""`jobpulse generate alertmanager`: maintenance windows as Alertmanager time intervals and a
muting route. The output is accepted by the real `amtool check-config` merged into the shipped
alertmanager.yml; Alertmanager's reading of the intervals (its semantics, evaluated here)
mutes at exactly the instants the sidecar holds the jobs, DST nights included; a window that
cannot be expressed fails, naming the window and the field."""

from __future__ import annotations

import subprocess
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import yaml

from jobpulse.instrumentation.cli import main
from jobpulse.instrumentation.errors import ConfigError
from jobpulse.sidecar.config import parse_config
from jobpulse.sidecar.domain.maintenance import Window
from jobpulse.sidecar.generate.alertmanager import alertmanager_yaml, time_intervals
from tests.generate.conftest import REPO, require_binary

CONFIG = """
jobs:
  - name: db.backup
    schedule: "0 * * * *"
    labels: {team: data}
maintenance:
  - name: nightly
    jobs: [db.backup]
    schedule: "0 2 * * *"
    duration: 2h
    timezone: Europe/Riga
  - name: weekday-evening
    match: {team: data}
    schedule: "30 22 * * mon-fri"
    duration: 3h
    timezone: America/New_York
  - name: every-six-hours
    jobs: [db.backup]
    schedule: "15 */6 * * *"
    duration: 45m
  - name: skipped-hour
    jobs: [db.backup]
    schedule: "30 3 1-15 * *"
    duration: 1h
    timezone: Europe/Riga
  - name: once
    jobs: [db.backup]
    start: "2026-10-24T22:00:00"
    duration: 30h
    timezone: Europe/Riga
"""
WINDOWS = parse_config(CONFIG).maintenance


def _in(value: int, specs: list[str] | None, names: tuple[str, ...] = ()) -> bool:
    if specs is None:
        return True
    for spec in specs:
        lo, _, hi = spec.partition(":")
        a = names.index(lo) if names else int(lo)
        b = (names.index(hi) if names else int(hi)) if hi else a
        if a <= value <= b:
            return True
    return False


_DAYS = ("sunday", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday")


def _muted(intervals: list[Mapping[str, Any]], t: float) -> bool:
    """Alertmanager's reading of ``time_intervals`` (timeinterval.go): every given field
    matches the local time in ``location``; times are [start, end) minutes of the day."""
    for interval in intervals:
        local = datetime.fromtimestamp(t, ZoneInfo(interval["location"]))
        minute = local.hour * 60 + local.minute
        times = interval.get("times")
        if times is not None and not any(
            _minutes(r["start_time"]) <= minute < _minutes(r["end_time"]) for r in times
        ):
            continue
        weekday = (local.weekday() + 1) % 7  # Sunday first, as _DAYS
        if not _in(weekday, interval.get("weekdays"), _DAYS):
            continue
        if not _in(local.day, interval.get("days_of_month")):
            continue
        if not _in(local.month, interval.get("months")):
            continue
        if not _in(local.year, interval.get("years")):
            continue
        return True
    return False


def _minutes(clock: str) -> int:
    hours, minutes = clock.split(":")
    return int(hours) * 60 + int(minutes)


def _instants() -> list[float]:
    """Every 5 minutes over weeks that hold both DST changes of Europe and America, the first
    half of a month and an ordinary week."""
    out: list[float] = []
    for first in ("2026-03-06", "2026-03-26", "2026-10-22", "2026-10-30", "2026-06-01"):
        start = datetime.fromisoformat(first).replace(tzinfo=UTC).timestamp()
        out += [start + i * 300 for i in range(10 * 288)]
    return out


@pytest.mark.parametrize("spec", WINDOWS, ids=lambda s: s.name)
def test_alertmanager_mutes_exactly_when_the_sidecar_holds_the_job(spec: Any) -> None:
    intervals = time_intervals(spec.as_dict())
    window = Window.from_spec(spec)
    disagree = [
        datetime.fromtimestamp(t, UTC).isoformat()
        for t in _instants()
        if _muted(intervals, t) != (window.span_at(t) is not None)
    ]
    assert disagree == []


def test_amtool_accepts_the_intervals_merged_into_the_shipped_config(tmp_path: Path) -> None:
    amtool = require_binary("amtool")
    generated = yaml.safe_load(alertmanager_yaml([w.as_dict() for w in WINDOWS]))
    config = yaml.safe_load((REPO / "deploy" / "alertmanager.yml").read_text(encoding="utf-8"))
    config["time_intervals"] = generated["time_intervals"]
    config["route"]["routes"] = generated["route"]["routes"] + config["route"]["routes"]
    path = tmp_path / "alertmanager.yml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    done = subprocess.run(
        [amtool, "check-config", str(path)], capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 0, done.stdout + done.stderr
    # An alert of the window's job is routed through its muting route (to the root's receiver;
    # without it, team=data would go to data-chat).
    labels = ["job_name=db.backup", "team=data", "alertname=JobPulseRunFailed"]
    test = [amtool, "config", "routes", "test", f"--config.file={path}"]
    routed = subprocess.run(
        [*test, "--verify.receivers=default", *labels],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert routed.returncode == 0, routed.stdout + routed.stderr
    names = {interval["name"] for interval in generated["time_intervals"]}
    assert names == {f"jobpulse-maintenance-{w.name}" for w in WINDOWS}
    muting = generated["route"]["routes"]
    assert muting[0] == {
        "matchers": [r'job_name=~"db\\.backup"'],
        "mute_time_intervals": ["jobpulse-maintenance-every-six-hours"],
    }
    assert {
        "matchers": ['job_name=~".+"', 'team="data"'],
        "mute_time_intervals": ["jobpulse-maintenance-weekday-evening"],
    } in muting


@pytest.mark.parametrize(
    ("schedule", "duration", "named"),
    [
        ("0 2 L * *", 3600, "L, W, # or ?"),
        ("0 2 1 * mon", 3600, "both day of month and day of week"),
        ("* 2 * * *", 3600, "schedule minute '*'"),
        ("30 0 2 * * *", 3600, "seconds '30'"),
        ("0 2 * * *", 90, "whole minutes"),
        ("0 2 * * *", 25 * 3600, "at most 24h"),
        ("0 23 * 1-6 *", 7200, "past midnight"),
        ("0 23 30 * *", 7200, "past midnight"),
    ],
)
def test_a_window_alertmanager_cannot_express_fails_naming_it(
    schedule: str, duration: float, named: str
) -> None:
    window = {
        "name": "odd",
        "jobs": ["x"],
        "match": {},
        "start": None,
        "schedule": schedule,
        "duration": duration,
        "timezone": "UTC",
    }
    with pytest.raises(ConfigError, match="maintenance window 'odd' cannot be expressed") as info:
        time_intervals(window)
    assert named in str(info.value)


def test_the_command_reads_the_configuration_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "jobpulse.yaml"
    path.write_text(CONFIG, encoding="utf-8")
    assert main(["generate", "alertmanager", "--config", str(path)]) == 0
    assert capsys.readouterr().out == alertmanager_yaml([w.as_dict() for w in WINDOWS])
    out = tmp_path / "am.yml"
    assert main(["generate", "alertmanager", "--config", str(path), "-o", str(out)]) == 0
    assert out.read_text(encoding="utf-8") == alertmanager_yaml([w.as_dict() for w in WINDOWS])
    path.write_text(
        'maintenance:\n  - {name: odd, jobs: [x], schedule: "0 2 L * *", duration: 1h}\n',
        encoding="utf-8",
    )
    assert main(["generate", "alertmanager", "--config", str(path)]) == 2
    assert "maintenance window 'odd' cannot be expressed" in capsys.readouterr().err
    assert main(["generate", "alertmanager"]) == 2
    assert "--config" in capsys.readouterr().err
