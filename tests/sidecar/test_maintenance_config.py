"""The ``maintenance:`` section of jobpulse.yaml: what it accepts, and errors that name the
window and the field (and `jobpulse check-config` reporting them)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from jobpulse.instrumentation.cli import main
from jobpulse.instrumentation.errors import ConfigError
from jobpulse.sidecar.config import parse_config

GOOD = """
jobs:
  - name: backup
    schedule: "30 3 * * *"
maintenance:
  - name: nightly
    jobs: [backup, Other-Job]
    schedule: "0  2 * * *"
    duration: 2h
    timezone: Europe/Riga
  - name: db-upgrade
    match: {team: data, tier: 1}
    start: "2026-12-05T02:00:00"
    duration: 90m
    timezone: Europe/Riga
  - name: at-offset
    jobs: [backup]
    start: 2026-12-05T02:00:00+00:00
    duration: 600
"""


def test_windows_are_parsed() -> None:
    nightly, upgrade, offset = parse_config(GOOD).maintenance
    assert nightly.name == "nightly"
    assert nightly.jobs == ("backup", "other-job")  # names are case-folded as job names
    assert nightly.schedule == "0 2 * * *"
    assert nightly.duration == 7200
    assert nightly.start is None
    assert upgrade.match == (("team", "data"), ("tier", "1"))
    # Without an offset, start is read in the window's timezone (EET in December).
    assert upgrade.start == datetime(2026, 12, 5, 0, 0, tzinfo=UTC).timestamp()
    assert upgrade.duration == 5400
    assert offset.start == datetime(2026, 12, 5, 2, 0, tzinfo=UTC).timestamp()
    assert offset.timezone == "UTC"


BASE = "  - name: db-upgrade\n    jobs: [backup]\n"


@pytest.mark.parametrize(
    ("window", "message"),
    [
        (BASE + "    schedule: '0 2 * * *'\n    duration: 2x\n", "duration '2x' is not a duration"),
        (BASE + "    schedule: '0 2 * * *'\n    duration: 0\n", "duration 0 must be a positive"),
        (BASE + "    schedule: '0 2 * * *'\n    duration: 32d\n", "longer than the maximum of 31d"),
        (BASE + "    schedule: '0 2 * * *'\n", "no duration"),
        (BASE + "    schedule: '0 25 * * *'\n    duration: 1h\n", "not a valid cron expression"),
        (BASE + "    schedule: '0 2 * *'\n    duration: 1h\n", "has 4 fields"),
        (BASE + "    duration: 1h\n", "give either start: (a one-off window"),
        (
            BASE
            + "    schedule: '0 2 * * *'\n    start: '2026-12-05T02:00:00Z'\n    duration: 1h\n",
            "not both or neither",
        ),
        (
            BASE + "    start: 'next friday'\n    duration: 1h\n",
            "start 'next friday' is not an ISO",
        ),
        (BASE + "    start: 5\n    duration: 1h\n", "start 5 must be an ISO 8601"),
        (
            BASE + "    schedule: '0 2 * * *'\n    duration: 1h\n    timezone: Mars/Base\n",
            "timezone 'Mars/Base' is not an IANA zone name",
        ),
        (
            BASE + "    schedule: '0 2 * * *'\n    duration: 1h\n    until: x\n",
            "unknown field 'until'; accepted: name, jobs, match",
        ),
        (
            "  - name: db-upgrade\n    schedule: '0 2 * * *'\n    duration: 1h\n",
            "no target; give jobs: [names] and/or match:",
        ),
        (
            "  - name: db-upgrade\n    jobs: []\n    schedule: '0 2 * * *'\n    duration: 1h\n",
            "jobs [] must be a non-empty list",
        ),
        (
            "  - name: db-upgrade\n    jobs: ['bad name']\n    schedule: '0 2 * * *'\n"
            "    duration: 1h\n",
            "jobs[0]: job name 'bad name' is invalid",
        ),
        (
            "  - name: db-upgrade\n    match: {'le': x, 'a b': y}\n    schedule: '0 2 * * *'\n"
            "    duration: 1h\n",
            "match label 'a b' is not a label name",
        ),
        (
            "  - name: db-upgrade\n    match: {team: [a]}\n    schedule: '0 2 * * *'\n"
            "    duration: 1h\n",
            "match label 'team' has value ['a']",
        ),
    ],
)
def test_errors_name_the_window_and_the_field(window: str, message: str) -> None:
    text = "maintenance:\n  - name: first\n    jobs: [a]\n    schedule: '0 1 * * *'\n"
    text += "    duration: 1h\n" + window
    with pytest.raises(ConfigError) as info:
        parse_config(text, source="jobpulse.yaml")
    assert str(info.value).startswith("jobpulse.yaml: maintenance[1] (db-upgrade): ")
    assert message in str(info.value)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("maintenance: {name: x}\n", "maintenance must be a list"),
        ("maintenance:\n  - just-a-name\n", "maintenance[0] must be a mapping"),
        ("maintenance:\n  - {name: 'Bad Name', jobs: [a]}\n", "name 'Bad Name' must be"),
        (
            "maintenance:\n  - {name: a, jobs: [x], schedule: '0 1 * * *', duration: 1h}\n"
            "  - {name: a, jobs: [x], schedule: '0 2 * * *', duration: 1h}\n",
            "maintenance[1]: window 'a' is defined twice",
        ),
        (
            "windows: []\n",
            "unknown top-level key(s) windows; accepted: sidecar, jobs, notify, maintenance",
        ),
    ],
)
def test_section_errors(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=None) as info:
        parse_config(text)
    assert message in str(info.value)


def test_check_config_reports_windows(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "jobpulse.yaml"
    path.write_text(GOOD, encoding="utf-8")
    assert main(["check-config", str(path)]) == 0
    assert "OK (1 job, 3 maintenance windows)" in capsys.readouterr().out
    path.write_text(GOOD.replace("duration: 90m", "duration: 90x"), encoding="utf-8")
    assert main(["check-config", str(path)]) == 78
    assert "maintenance[1] (db-upgrade): duration '90x' is not a duration" in (
        capsys.readouterr().err
    )
