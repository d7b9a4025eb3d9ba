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


def _routed(amtool: str, config: Path, labels: list[str]) -> str:
    done = subprocess.run(
        [amtool, "config", "routes", "test", f"--config.file={config}", *labels],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout.strip()


def _check(amtool: str, path: Path) -> None:
    done = subprocess.run(
        [amtool, "check-config", str(path)], capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 0, done.stdout + done.stderr


# Alerts of jobs held by none, one or several windows, by name or by team, of each severity.
LABEL_SETS = [
    [f"job_name={job}", *team, f"severity={severity}", "alertname=JobPulseRunFailed"]
    for job in ("db.backup", "db-backup", "other")
    for team in ([], ["team=data"], ["team=ops"])
    for severity in ("warning", "critical")
]


def test_merged_into_a_base_config_each_alert_reaches_the_receiver_it_did_before(
    tmp_path: Path,
) -> None:
    """With ``--base``, the team's routes stay theirs: every alert, held by a window or not,
    reaches the receivers it reached without maintenance (as amtool routes it)."""
    amtool = require_binary("amtool")
    shipped = REPO / "deploy" / "alertmanager.yml"
    base = yaml.safe_load(shipped.read_text(encoding="utf-8"))
    text = alertmanager_yaml([w.as_dict() for w in WINDOWS], base=base, base_name="am.yml")
    assert text.startswith("# Generated by `jobpulse generate alertmanager --base am.yml`")
    merged = tmp_path / "alertmanager.yml"
    merged.write_text(text, encoding="utf-8")
    _check(amtool, merged)
    document = yaml.safe_load(text)
    assert {i["name"] for i in document["time_intervals"]} == {
        f"jobpulse-maintenance-{w.name}" for w in WINDOWS
    }
    assert document["receivers"] == base["receivers"]
    assert document["inhibit_rules"] == base["inhibit_rules"]
    assert document["route"]["routes"][-len(base["route"]["routes"]) :] == base["route"]["routes"]
    for labels in LABEL_SETS:
        assert _routed(amtool, merged, labels) == _routed(amtool, shipped, labels), labels


def test_an_alert_of_a_job_in_several_windows_is_muted_by_each_of_them() -> None:
    """Alertmanager mutes an alert by the intervals of the one route it ends in: db.backup's
    route holds, for its alerts that also carry team=data, a route muted by every window that
    holds them (before, the first window's route took them and the others never muted)."""
    document = yaml.safe_load(alertmanager_yaml([w.as_dict() for w in WINDOWS]))
    route = document["route"]["routes"][0]
    seen = [route["mute_time_intervals"]]
    while route.get("routes"):
        route = route["routes"][0]
        seen.append(route["mute_time_intervals"])
    names = [f"jobpulse-maintenance-{n}" for n in sorted(w.name for w in WINDOWS)]
    assert seen == [names[: i + 1] for i in range(len(names))]
    assert route["matchers"] == ['job_name=~".+"', 'team="data"']
    # The team window alone, for the jobs no named window holds.
    assert document["route"]["routes"][-1] == {
        "matchers": ['job_name=~".+"', 'team="data"'],
        "mute_time_intervals": ["jobpulse-maintenance-weekday-evening"],
    }


def test_too_many_windows_that_may_hold_the_same_jobs_are_refused() -> None:
    """Each window that may hold the same jobs doubles the routes: past MAX_ROUTES the command
    fails naming the cause, rather than writing a configuration Alertmanager chokes on."""
    team = {**WINDOWS[1].as_dict(), "jobs": []}
    windows = [{**team, "name": f"w{i:02d}", "match": {"team": f"t{i}"}} for i in range(16)]
    with pytest.raises(ConfigError, match="more than 10000 Alertmanager routes"):
        alertmanager_yaml(windows)
    # A window naming a job and a team: an alert with both is muted once by it, not twice.
    both = {**WINDOWS[0].as_dict(), "name": "both", "jobs": ["x"], "match": {"team": "data"}}
    document = yaml.safe_load(alertmanager_yaml([both]))
    nested = document["route"]["routes"][0]["routes"][0]
    assert nested["mute_time_intervals"] == ["jobpulse-maintenance-both"]


def test_windows_of_different_jobs_are_not_nested() -> None:
    windows = [
        {**WINDOWS[0].as_dict(), "name": "a", "jobs": ["x"]},
        {**WINDOWS[0].as_dict(), "name": "b", "jobs": ["y"]},
    ]
    document = yaml.safe_load(alertmanager_yaml(windows))
    assert document["route"]["routes"] == [
        {"matchers": ['job_name=~"x"'], "mute_time_intervals": ["jobpulse-maintenance-a"]},
        {"matchers": ['job_name=~"y"'], "mute_time_intervals": ["jobpulse-maintenance-b"]},
    ]


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


def test_the_command_merges_into_a_base_file_and_names_what_it_refuses(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "jobpulse.yaml"
    path.write_text(CONFIG, encoding="utf-8")
    shipped = REPO / "deploy" / "alertmanager.yml"
    out = tmp_path / "am.yml"
    args = ["generate", "alertmanager", "--config", str(path)]
    assert main([*args, "--base", str(shipped), "-o", str(out)]) == 0
    base = yaml.safe_load(shipped.read_text(encoding="utf-8"))
    assert out.read_text(encoding="utf-8") == alertmanager_yaml(
        [w.as_dict() for w in WINDOWS], base=base, base_name=str(shipped)
    )
    # Merging into the output again would mute twice: refused, naming the intervals.
    assert main([*args, "--base", str(out)]) == 2
    err = capsys.readouterr().err
    assert f"--base {out}: it already has the time interval(s) jobpulse-maintenance-" in err
    missing = tmp_path / "missing.yml"
    assert main([*args, "--base", str(missing)]) == 2
    assert f"--base {missing}: cannot be read" in capsys.readouterr().err
    bad = tmp_path / "bad.yml"
    bad.write_text("route: [unclosed\n", encoding="utf-8")
    assert main([*args, "--base", str(bad)]) == 2
    assert f"--base {bad}: not valid YAML" in capsys.readouterr().err
    bad.write_text("receivers: []\n", encoding="utf-8")
    assert main([*args, "--base", str(bad)]) == 2
    assert f"--base {bad}: it has no root `route:`" in capsys.readouterr().err
