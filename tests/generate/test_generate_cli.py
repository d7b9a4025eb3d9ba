"""`jobpulse generate alerts|dashboards` through the real command-line parser."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from jobpulse.instrumentation.cli import main
from jobpulse.sidecar.generate import render_dashboards, render_rules


def test_alerts_to_stdout(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["generate", "alerts"]) == 0
    assert capsys.readouterr().out == render_rules()


def test_alerts_to_a_file_with_profile_and_selector(tmp_path: Path) -> None:
    out = tmp_path / "rules.yml"
    argv = ["generate", "alerts", "--profile", "test", "--selector", 'job="jp"', "-o", str(out)]
    assert main(argv) == 0
    assert out.read_text(encoding="utf-8") == render_rules("test", 'job="jp"')
    assert 'up{job="jp"}' in out.read_text(encoding="utf-8")


def test_dashboards_to_a_folder(tmp_path: Path) -> None:
    assert main(["generate", "dashboards", "-o", str(tmp_path / "boards")]) == 0
    for name, text in render_dashboards().items():
        assert (tmp_path / "boards" / f"{name}.json").read_text(encoding="utf-8") == text


def test_dashboards_to_stdout_as_one_object(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["generate", "dashboards"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed == {name: json.loads(text) for name, text in render_dashboards().items()}


def test_bad_selector_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["generate", "alerts", "--selector", "job=jobpulse"]) == 2
    assert "selector 'job=jobpulse'" in capsys.readouterr().err
